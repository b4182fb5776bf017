// Server profile: runs a benchmark with every Node process under `--cpu-prof`
// and summarises the server's CPU profile, so that where its time goes is
// printed by a script rather than read off by hand.
//
//   node bench/profile.ts [--bench fleet|api] [--top 15] [--record] [-- <the benchmark's own flags>]
//
// The benchmark runs as it would alone (its defaults, or the flags after
// `--`), never with its `--record`: the profiler slows every process it is in
// (the server, and the bench's other Node processes, which it also profiles),
// so the benchmark's own figures from this run are printed but not recorded.
// The server's profile is the one whose code includes src/server/; the
// summary covers its main thread (the store's checkpoint worker is left out):
//   busy and idle time over the whole run (the server is idle between phases)
//   self time by function, the top N: where the CPU was when sampled
//   inclusive time by Strata function (src/), the top N: a function and
//     everything it called
//   inclusive time by package: node_modules packages, Node's built-in modules
//     and Strata's src/ folders, each counted once per sample
// Native code without a frame of its own (better-sqlite3 running a statement)
// is counted as the self time of the JavaScript that called it. Built-in
// modules that dispatch callbacks (node:internal/process runs promise
// continuations, node:events emits) include what they dispatch: read them as
// paths the time went through, not as costs of their own.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadNote, machineLine, recordSection } from './record.ts';

const { values: flags, positionals } = parseArgs({
  options: {
    bench: { type: 'string', default: 'fleet' },
    top: { type: 'string', default: '15' },
    record: { type: 'boolean', default: false },
  },
  allowPositionals: true,
});
const benches = ['fleet', 'api'];
if (!benches.includes(flags.bench)) throw new Error(`--bench must be one of ${benches.join(', ')}`);
if (positionals.includes('--record')) throw new Error("the benchmark's own --record is not allowed here");
const top = Number(flags.top);

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives, in the repository's terms: a package, a built-in module or a src/ folder. */
function packageOf(url: string): string | undefined {
  if (url === '') return undefined;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + 'node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  if (url.startsWith('node:')) {
    const parts = url.slice('node:'.length).split('/');
    return `node:${parts[0] === 'internal' && parts.length > 2 ? `internal/${parts[1]}` : parts.slice(0, 2).join('/')}`;
  }
  const src = url.indexOf('/src/');
  if (src >= 0) return `src/${url.slice(src + '/src/'.length).split('/')[0]}`;
  return '(other scripts)';
}

function srcPath(url: string): string | undefined {
  const src = url.indexOf('/src/');
  return src >= 0 && !url.includes('node_modules/') ? url.slice(src + 1) : undefined;
}

function label(frame: CallFrame): string {
  const pkg = packageOf(frame.url);
  const where =
    srcPath(frame.url) ??
    (frame.url.startsWith('node:') ? frame.url : pkg ? `${pkg}/…/${frame.url.split('/').pop()}` : 'native');
  // lineNumber is 0-based in the profile.
  return `${frame.functionName || '(anonymous)'} ${where}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
}

interface Summary {
  wallMs: number;
  busyMs: number;
  idleMs: number;
  self: [string, number][];
  bySrcFunction: [string, number][];
  byPackage: [string, number][];
}

function summarise(profile: CpuProfile): Summary {
  const byId = new Map(profile.nodes.map(n => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfById = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfById.set(id, (selfById.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const add = (m: Map<string, number>, k: string, us: number) => m.set(k, (m.get(k) ?? 0) + us);
  const self = new Map<string, number>();
  const bySrcFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let idle = 0;
  let total = 0;
  for (const [id, us] of selfById) {
    total += us;
    const node = byId.get(id)!;
    if (node.callFrame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    add(self, label(node.callFrame), us);
    // Each function and package once per sample, however deep it recurses.
    const seenFn = new Set<string>();
    const seenPkg = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)!.callFrame;
      if (srcPath(frame.url)) {
        const k = label(frame);
        if (!seenFn.has(k)) {
          seenFn.add(k);
          add(bySrcFunction, k, us);
        }
      }
      const pkg = packageOf(frame.url);
      if (pkg && !seenPkg.has(pkg)) {
        seenPkg.add(pkg);
        add(byPackage, pkg, us);
      }
    }
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top);
  return {
    wallMs: (profile.endTime - profile.startTime) / 1000,
    busyMs: (total - idle) / 1000,
    idleMs: idle / 1000,
    self: sorted(self),
    bySrcFunction: sorted(bySrcFunction),
    byPackage: sorted(byPackage),
  };
}

function table(title: string, rows: [string, number][], busyMs: number): string {
  return [
    `| ${title} | ms | % of busy |`,
    '|---|---:|---:|',
    ...rows.map(([k, us]) => `| \`${k}\` | ${(us / 1000).toFixed(0)} | ${((us / 1000 / busyMs) * 100).toFixed(1)} |`),
  ].join('\n');
}

// bench/api.ts ends on a second server (admission alone): one server profile is wanted.
if (flags.bench === 'api' && !positionals.includes('--no-admission-only')) positionals.push('--no-admission-only');
const script = join(import.meta.dirname, `${flags.bench}.ts`);
const profileDir = mkdtempSync(join(os.tmpdir(), 'strata-profile-'));
const loadBefore = os.loadavg();
try {
  const nodeOptions = [process.env.NODE_OPTIONS, '--cpu-prof', `--cpu-prof-dir=${profileDir}`].filter(Boolean);
  const child = spawn(process.execPath, [script, ...positionals], {
    env: { ...process.env, NODE_OPTIONS: nodeOptions.join(' ') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let benchOut = '';
  child.stdout.on('data', (d: Buffer) => {
    benchOut += d.toString();
  });
  const code = await new Promise<number | null>(resolve => child.once('exit', resolve));
  const loadAfter = os.loadavg();
  if (code !== 0) throw new Error(`bench/${flags.bench}.ts exited with ${code}`);

  // File names are CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is the main thread.
  const candidates = readdirSync(profileDir).filter(f => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  const servers = candidates
    .map(f => ({ file: f, profile: JSON.parse(readFileSync(join(profileDir, f), 'utf8')) as CpuProfile }))
    .filter(p => p.profile.nodes.some(n => srcPath(n.callFrame.url)?.startsWith('src/server/')));
  if (servers.length !== 1) {
    throw new Error(`expected one server profile among ${candidates.length}, found ${servers.length}`);
  }
  const s = summarise(servers[0]!.profile);

  const benchCommand = `node bench/${flags.bench}.ts${positionals.length ? ` ${positionals.join(' ')}` : ''}`;
  const report = [
    `Server main thread: ${(s.wallMs / 1000).toFixed(1)} s profiled, ${(s.busyMs / 1000).toFixed(1)} s busy, ${(s.idleMs / 1000).toFixed(1)} s idle.`,
    '',
    table(`self time, top ${top}`, s.self, s.busyMs),
    '',
    table(`inclusive time by Strata function (src/), top ${top}`, s.bySrcFunction, s.busyMs),
    '',
    table(`inclusive time by package, top ${top}`, s.byPackage, s.busyMs),
  ].join('\n');
  console.log(`bench/${flags.bench}.ts printed (under the profiler, not recorded):\n${benchOut.trim()}\n`);
  console.log(report);

  if (flags.record) {
    const extra = positionals.length ? ` -- ${positionals.join(' ')}` : '';
    recordSection('profile.ts', [
      machineLine(`Node ${process.version}`, loadNote(loadBefore, loadAfter)),
      `Command: \`node bench/profile.ts --bench ${flags.bench} --top ${top} --record${extra}\` (runs \`${benchCommand}\` with every Node process under \`--cpu-prof\` and summarises the server's main thread; the sampling profiler slows what it measures, so the benchmark's own figures from this run are left out; percentages are of the server's busy time, idle time waiting for work excluded; native code with no frame of its own, such as SQLite running a statement, is the self time of the JavaScript that called it; built-in modules that dispatch callbacks count what they dispatch).`,
      '',
      report,
      '',
    ]);
  }
} catch (err) {
  process.exitCode = 1;
  console.error(err);
} finally {
  rmSync(profileDir, { recursive: true, force: true });
}
