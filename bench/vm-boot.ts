// VM boot latency: Strata against the same QEMU command line started by hand.
//
//   node bench/vm-boot.ts [--runs 12] [--record]
//
// strata   POST /v1/instances (kind vm, the busybox image, a command printing
//          a marker) to a real server and agent (child processes)
// by hand  the very command line the agent ran (read from /proc of its QEMU),
//          on a fresh overlay and a copy of its config disk
// Both are timed to the marker line appearing in the serial console log,
// watched the same way (fs.watch on its directory, reading what was appended,
// with a check every 50 ms in case an event is missed). One warm-up each, then
// --runs pairs, Strata then by hand, so each pair sees the same machine; the
// verdict reads from the paired differences (Strata minus hand) and their
// spread, since under TCG on a shared machine either path alone spreads wider
// than the overhead it is measured against.
// The accelerator (KVM, or TCG where KVM cannot run guests) is the agent's.
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  type FSWatcher,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  watch,
} from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createTap, deleteTap } from '../src/drivers/vm/network.ts';
import {
  client,
  killProcessesMentioning,
  removeDir,
  startServerProcess,
  strataBin,
  tempDir,
  until,
} from '../test/helpers.ts';
import { loadNote, machineLine, recordSection } from './record.ts';

const { values: flags } = parseArgs({
  options: { runs: { type: 'string', default: '12' }, record: { type: 'boolean', default: false } },
});
const runs = Number(flags.runs);
const MARKER = 'vm-boot-marker';
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/**
 * The moment the marker appears in `file`. The nearest directory of it that
 * exists is watched (its own once it does), and only what was appended since
 * the last look is read; the fallback check catches an event missed while the
 * watch moves to a directory that just appeared.
 */
function waitForMarker(file: string, timeoutMs = 120_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const buf = Buffer.alloc(64 * 1024);
    let fd: number | undefined;
    let offset = 0;
    let tail = '';
    let watcher: FSWatcher | undefined;
    let watched = '';
    let done = false;
    const finish = (err: Error | undefined, at = 0) => {
      done = true;
      clearInterval(fallback);
      clearTimeout(timer);
      watcher?.close();
      if (fd !== undefined) closeSync(fd);
      if (err) reject(err);
      else resolve(at);
    };
    const check = () => {
      if (done) return;
      const at = performance.now();
      try {
        let want = dirname(file);
        while (!existsSync(want)) want = dirname(want);
        if (want !== watched) {
          watcher?.close();
          watcher = watch(want, check);
          watched = want;
        }
        if (fd === undefined) {
          if (!existsSync(file)) return;
          fd = openSync(file, 'r');
        }
        for (let n = readSync(fd, buf, 0, buf.length, offset); n > 0; n = readSync(fd, buf, 0, buf.length, offset)) {
          offset += n;
          const text = tail + buf.toString('latin1', 0, n);
          if (text.includes(MARKER)) return finish(undefined, at);
          tail = text.slice(-(MARKER.length - 1));
        }
      } catch (err) {
        finish(err as Error);
      }
    };
    const fallback = setInterval(check, 50);
    const timer = setTimeout(() => finish(new Error(`no marker in ${file}`)), timeoutMs);
    check();
  });
}

const dir = tempDir('strata-bench-vm-');
const agentData = join(dir, 'agent');
const srv = await startServerProcess(dir);
const admin = client(srv.url, srv.adminToken);
const joinToken = (await admin.post('/v1/join-tokens', {})).body.secret as string;
const agent = spawn(
  strataBin,
  [
    'agent',
    '--server',
    srv.url,
    '--data',
    agentData,
    '--name',
    'bench-vm',
    '--log-level',
    'warn',
    '--join-token',
    joinToken,
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
await until('the agent offers VMs', async () =>
  (await admin.get('/v1/hosts')).body.items.find(
    (h: { drivers: string[]; state: string }) => h.state === 'ready' && h.drivers.includes('vm'),
  ),
);

let accelerator = '';
let template: string[] | undefined;
const ids: string[] = [];

async function strata(): Promise<number> {
  const t0 = performance.now();
  const res = await admin.post('/v1/instances', {
    project: 'default',
    kind: 'vm',
    image: 'busybox',
    command: ['sh', '-c', `echo ${MARKER}; sleep 600`],
    resources: { vcpus: 1, memoryMib: 256, diskGib: 1 },
  });
  if (res.status !== 201) throw new Error(`create answered ${res.status}: ${JSON.stringify(res.body)}`);
  const id = res.body.id as string;
  ids.push(id);
  const t1 = await waitForMarker(join(agentData, 'vm', id, 'serial.log'));
  const i = await until('running', async () => {
    const x = (await admin.get(`/v1/instances/${id}`)).body;
    return x.state === 'running' && x.observed.accelerator ? x : undefined;
  });
  accelerator = i.observed.accelerator;
  // The agent's QEMU command line, for the hand-started twin.
  const pid = Number(readFileSync(join(agentData, 'vm', id, 'qemu.pid'), 'utf8'));
  if (!template) {
    template = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map(a => a.replaceAll(join(agentData, 'vm', id), '@DIR@'));
    copyFileSync(join(agentData, 'vm', id, 'config.img'), join(dir, 'config.img'));
  }
  return t1 - t0;
}

let handRun = 0;
async function byHand(): Promise<number> {
  if (!template) throw new Error('no command line to copy yet');
  const d = join(dir, `hand-${++handRun}`);
  mkdirSync(d);
  // What the agent prepares before QEMU starts (not timed): a fresh overlay and the config disk.
  const base = join('/var/lib/strata-host/vm/images', 'busybox.qcow2');
  execFileSync('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-b',
    base,
    '-F',
    'qcow2',
    join(d, 'root.qcow2'),
    String(1024 ** 3),
  ]);
  copyFileSync(join(dir, 'config.img'), join(d, 'config.img'));
  // Its own tap on the same bridge (the agent's belongs to its instance).
  const tap = `stapbench${handRun % 100}`;
  await createTap(tap, 'strata0');
  const args = template.map(a => a.replaceAll('@DIR@', d).replace(/ifname=stap[0-9a-f]+/, `ifname=${tap}`));
  const t0 = performance.now();
  const child = spawn(args[0]!, args.slice(1), { cwd: d, stdio: 'ignore', detached: true });
  const t1 = await waitForMarker(join(d, 'serial.log'));
  child.kill('SIGKILL');
  await new Promise(r => child.once('exit', r));
  await deleteTap(tap);
  rmSync(d, { recursive: true, force: true });
  return t1 - t0;
}

/** Deletes Strata's VMs, and waits until their QEMUs are gone, so no guest runs during the next timing. */
async function cleanup(): Promise<void> {
  for (const id of ids.splice(0)) {
    await admin.delete(`/v1/instances/${id}`);
    await until('deleted', async () => ((await admin.get(`/v1/instances/${id}`)).status === 404 ? true : undefined));
  }
}

const paths = [
  { name: 'Strata API (POST /v1/instances, kind vm)', run: strata, ms: [] as number[] },
  { name: 'the same QEMU command line, by hand', run: byHand, ms: [] as number[] },
];
const load = os.loadavg();
for (const p of paths) {
  await p.run(); // warm-up
  await cleanup();
}
for (let i = 0; i < runs; i++) {
  for (const p of paths) {
    p.ms.push(await p.run());
    await cleanup();
    await sleep(300);
  }
  process.stderr.write(`\rround ${i + 1}/${runs}`);
}
process.stderr.write('\n');

/** The q-quantile of xs, interpolated between the nearest ranks. */
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (at - lo);
};
const median = (xs: number[]) => quantile(xs, 0.5);
/** Two-sided exact sign test: how likely `k` of `n` differences on one side would be if the median were 0. */
const signTest = (k: number, n: number) => {
  if (n === 0) return 1;
  const choose = (a: number, b: number) => {
    let c = 1;
    for (let i = 1; i <= b; i++) c = (c * (a - b + i)) / i;
    return c;
  };
  const tailFrom = Math.max(k, n - k);
  let p = 0;
  for (let i = tailFrom; i <= n; i++) p += choose(n, i) / 2 ** n;
  return Math.min(1, 2 * p);
};
const f = (n: number) => n.toFixed(0);
const signed = (n: number) => `${n >= 0 ? '+' : ''}${f(n)}`;
const diffs = paths[0]!.ms.map((ms, i) => ms - paths[1]!.ms[i]!);
const lines = [
  `| path | runs | median ms | Q1 ms | Q3 ms | min ms | max ms | accelerator |`,
  '|---|---:|---:|---:|---:|---:|---:|---|',
  ...[
    ...paths.map(p => ({ name: p.name, ms: p.ms, fmt: f })),
    { name: 'paired difference, Strata minus hand, run by run', ms: diffs, fmt: signed },
  ].map(
    ({ name, ms, fmt }) =>
      `| ${name} | ${ms.length} | ${fmt(median(ms))} | ${fmt(quantile(ms, 0.25))} | ${fmt(quantile(ms, 0.75))} | ${fmt(Math.min(...ms))} | ${fmt(Math.max(...ms))} | ${accelerator} |`,
  ),
];
const d = { median: median(diffs), q1: quantile(diffs, 0.25), q3: quantile(diffs, 0.75) };
const above = diffs.filter(x => x > 0).length;
const below = diffs.filter(x => x < 0).length;
const p = signTest(above, above + below);
const verdicts = [
  `Paired differences, Strata minus hand (${diffs.length} pairs): ${diffs.map(signed).join(', ')} ms.`,
  `Strata overhead against QEMU by hand: median paired difference ${signed(d.median)} ms (IQR ${signed(d.q1)} to ${signed(d.q3)}, min ${signed(Math.min(...diffs))}, max ${signed(Math.max(...diffs))}); target <= 100 ms: ${
    d.median <= 100 ? 'met' : 'not met'
  }${d.median <= 100 && d.q3 > 100 ? ` on the median, though more than a quarter of the pairs exceed it (Q3 ${signed(d.q3)} ms)` : ''}.`,
  `Distinguishable from zero? ${above} of ${above + below} pairs favour the hand path (sign test, two-sided p = ${p.toFixed(3)}): ${
    p < 0.05
      ? above > below
        ? 'yes, Strata is slower'
        : 'yes, Strata is faster'
      : 'no, the overhead is within the noise of this run'
  }.`,
];
console.log(lines.join('\n'));
console.log(verdicts.join('\n'));

if (flags.record) {
  const qemu = execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  recordSection('vm-boot.ts', [
    machineLine(`Node ${process.version}`, `${qemu}`, `accelerator ${accelerator}`, loadNote(load)),
    `Command: \`node bench/vm-boot.ts --runs ${runs} --record\` (microvm, 1 vCPU, 256 MiB, the busybox image, Strata's kernel and initramfs; time from the request, or from QEMU's spawn, to the marker line in the serial log, watched with fs.watch; one warm-up each, then ${runs} pairs, Strata then by hand; the verdict from the paired differences).`,
    '',
    ...lines,
    '',
    ...verdicts,
    '',
  ]);
  console.error('recorded in bench/RESULTS.md');
}

await cleanup();
agent.kill('SIGKILL');
killProcessesMentioning(agentData);
await srv.stop();
removeDir(dir);
