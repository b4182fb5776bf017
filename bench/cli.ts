// CLI latency: `strata` commands as a user types them, against the floor of
// Node itself and the runtime's own CLI, in one run.
//
//   node bench/cli.ts [--runs 30] [--bin PATH] [--record]
//
// --bin times another build's bin/strata (an older checkout, say) with the
// same server, agent and floors; the server and agent are this checkout's.
//
// Each row spawns a command and times it from the spawn to its exit, the
// bin/strata wrapper included. The rows run round-robin so drift in the
// machine's load touches all of them alike:
//   node -e 0                     the floor: Node's own start-up
//   podman ps                     the raw tool: a Go binary asking the runtime
//   strata --version              the CLI's start-up, no request
//   strata instance list          a table of 5 instances (two requests: the
//                                 instances, then their hosts' names)
//   strata run                    a create, answered once the server accepts it
//   strata run --wait             a create followed until the container runs
//   podman run -d                 the runtime's CLI, returning once it runs
// The server and an agent run as child processes on this machine with a
// context in a config file, as after `strata dev`. The quick commands run
// first, round-robin, while nothing else happens; then the runs (of `true`),
// each waiting (untimed) until its container has exited, and after each round
// the containers are removed and Podman's clean-up given a second. The first round of each is a
// warm-up (it also fills Node's compile cache) and is not recorded.
import { spawn } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { client, removeDir, startServerProcess, strataBin, tempDir, TEST_IMAGE, until } from '../test/helpers.ts';
import { cliContextEnv } from './cli-env.ts';
import { loadNote, machineLine, recordSection } from './record.ts';
import { startLocalAgent } from './local-agent.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '30' },
    bin: { type: 'string' },
    record: { type: 'boolean', default: false },
  },
});
const runs = Number(flags.runs);
const cli = flags.bin ?? strataBin;
const TARGET_MS = 60;

const dir = tempDir('strata-bench-cli-');
const srv = await startServerProcess(dir);
const admin = client(srv.url, srv.adminToken);
const { agent } = await startLocalAgent(srv, { dataDir: dir, name: 'bench-cli' });

const env = cliContextEnv(dir, srv);

const ok = (res: { status: number; body: unknown }, what: string) => {
  if (res.status >= 300) throw new Error(`${what} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body as { id: string; state: string };
};
ok(await admin.post('/v1/projects', { name: 'bench-run' }), 'project create');

const listed: string[] = [];
for (let i = 0; i < 5; i++) {
  const body = {
    project: 'default',
    kind: 'container',
    image: TEST_IMAGE,
    name: `listed-${i}`,
    command: ['true'],
  };
  listed.push(ok(await admin.post('/v1/instances', body), 'create').id);
}
/** Waits until the instance's container has run and exited. */
const exited = (id: string) =>
  until(`instance ${id} exits`, async () =>
    (await admin.get(`/v1/instances/${id}`)).body.state === 'stopped' ? true : undefined,
  );
for (const id of listed) await exited(id);

/** Runs a command to its exit; resolves with ms from spawn to exit. Fails the bench on a non-zero status. */
function timed(cmd: string, args: string[]): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', code => {
      const ms = performance.now() - t0;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${stderr}`));
      else resolve({ ms, stdout });
    });
  });
}

const podmanIds: string[] = [];
const runArgs = ['run', '-p', 'bench-run', '-o', 'json', TEST_IMAGE, '--', 'true'];
const idOf = (r: { stdout: string }) => (JSON.parse(r.stdout) as { id: string }).id;
const settle = () => new Promise(res => setTimeout(res, 50));
/** Quick commands: they change nothing, so they run round-robin with nothing else going on. */
const quick = [
  { name: '`node -e 0` (floor)', run: () => timed(process.execPath, ['-e', '0']) },
  { name: '`podman ps` (the raw tool)', run: () => timed('podman', ['ps']) },
  { name: '`strata --version`', run: () => timed(cli, ['--version']) },
  {
    name: '`strata instance list` (5 instances)',
    run: async () => {
      const r = await timed(cli, ['instance', 'list']);
      if (!r.stdout.includes('listed-4')) throw new Error(`instance list printed no instances: ${r.stdout}`);
      return r;
    },
  },
].map(r => ({ ...r, ms: [] as number[] }));
/**
 * Runs of `true`: each then waits, untimed, until its container has exited, so
 * neither its start nor a runtime call waiting on it (Podman polls its waits,
 * holding the container's lock) overlaps the next command.
 */
const starts = [
  {
    name: '`strata run` (answer on create)',
    run: async () => {
      const r = await timed(cli, runArgs);
      await exited(idOf(r));
      return r;
    },
  },
  {
    name: '`strata run --wait` (until running)',
    run: async () => {
      const r = await timed(cli, [...runArgs.slice(0, 1), '--wait', ...runArgs.slice(1)]);
      await exited(idOf(r));
      return r;
    },
  },
  {
    name: '`podman run -d` (until running)',
    run: async () => {
      const r = await timed('podman', ['run', '-d', '--network', 'bridge', TEST_IMAGE, 'true']);
      podmanIds.push(r.stdout.trim());
      await timed('podman', ['wait', r.stdout.trim()]);
      return r;
    },
  },
].map(r => ({ ...r, ms: [] as number[] }));
const rows = [...quick, ...starts];

/** Removes what the round created, untimed, and waits until it is gone so it never overlaps the next round. */
async function cleanup(): Promise<void> {
  const created = (await admin.get('/v1/instances?project=bench-run&limit=1000')).body.items as { id: string }[];
  for (const i of created) await admin.delete(`/v1/instances/${i.id}`);
  await until('the runs are removed', async () =>
    (await admin.get('/v1/instances?project=bench-run&limit=1000')).body.items.length === 0 ? true : undefined,
  );
  if (podmanIds.length) await timed('podman', ['rm', '-f', '-t', '0', ...podmanIds.splice(0)]);
  // Podman's own clean-up of a removed container (conmon, `podman container cleanup`) ends after it answers.
  await new Promise(res => setTimeout(res, 1000));
}

const load = os.loadavg();
console.error(`load average before the run: ${load.map(l => l.toFixed(2)).join(' ')}`);
for (const group of [quick, starts]) {
  for (const r of group) await r.run(); // warm-up, not recorded
  await cleanup();
  for (let i = 0; i < runs; i++) {
    for (const r of group) {
      r.ms.push((await r.run()).ms);
      await settle();
    }
    if (group === starts) await cleanup();
    process.stderr.write(`\r${group === quick ? 'quick commands' : 'runs'}: round ${i + 1}/${runs}`);
  }
  process.stderr.write('\n');
}
const loadAfter = os.loadavg();
console.error(`load average after the run: ${loadAfter.map(l => l.toFixed(2)).join(' ')}`);

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const f = (n: number) => n.toFixed(1);
const floor = pct(rows[0]!.ms, 50);
const lines = [
  '| command | runs | median ms | p90 ms | min ms | max ms | median over `node -e 0` |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...rows.map(
    r =>
      `| ${r.name} | ${r.ms.length} | ${f(pct(r.ms, 50))} | ${f(pct(r.ms, 90))} | ${f(Math.min(...r.ms))} | ${f(Math.max(...r.ms))} | ${r === rows[0] ? '-' : `+${f(pct(r.ms, 50) - floor)}`} |`,
  ),
];
const list = pct(rows[3]!.ms, 50) - floor;
const verdict = `\`strata instance list\` against \`node -e 0\`: median +${f(list)} ms (target <= ${TARGET_MS} ms: ${list <= TARGET_MS ? 'met' : 'not met'}).`;
console.log(lines.join('\n'));
console.log(verdict);

if (flags.record) {
  recordSection('cli.ts', [
    machineLine(`Node ${process.version}`, loadNote(load, loadAfter)),
    `Command: \`node bench/cli.ts --runs ${runs}${flags.bin ? ` --bin ${flags.bin}` : ''} --record\` (each command spawned and timed to its exit, bin/strata included; server and agent as child processes on this machine, the CLI's context in a config file; ${TEST_IMAGE}, \`true\`; the quick commands round-robin first, then the runs, each waiting untimed until its container has exited, containers removed after each round; one warm-up round each).`,
    '',
    ...lines,
    '',
    verdict,
    '',
  ]);
  console.error('recorded in bench/RESULTS.md');
}

// The agent removes Strata's containers before it goes.
for (const id of listed) await admin.delete(`/v1/instances/${id}`);
await cleanup().catch(() => undefined);
await until('the agent removed its containers', async () =>
  (await admin.get('/v1/instances?limit=1000')).body.items.length === 0 ? true : undefined,
).catch(() => undefined);
agent.kill('SIGKILL');
await srv.stop();
removeDir(dir);
