// Container start latency: Strata against the runtime it drives, in one run.
//
//   node bench/container-start.ts [--runs 20] [--record]
//
// Three paths start the same image with the same command, round-robin so
// drift in the machine's load touches all three alike:
//   strata       POST /v1/instances to a real server and agent (child processes)
//   podman-api   the same Docker API create request the agent sends, then start
//   podman-run   the `podman run --rm` CLI
// "First output" is the container's first action, an HTTP request to this
// bench (`wget http://GATEWAY:PORT/ready/ID`) on its network's gateway:
// it is timed to the microsecond here, where the runtime's log timestamps have
// one-second precision. Images are pulled before timing; each container is
// removed after its run, outside the timed part.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { createOptions } from '../src/drivers/container/driver.ts';
import {
  client,
  driverSpec,
  PODMAN_SOCKET,
  removeDir,
  startServerProcess,
  tempDir,
  TEST_IMAGE,
  until,
} from '../test/helpers.ts';
import { loadNote, machineLine, recordSection } from './record.ts';
import { startLocalAgent } from './local-agent.ts';

const { values: flags } = parseArgs({
  options: { runs: { type: 'string', default: '20' }, record: { type: 'boolean', default: false } },
});
const runs = Number(flags.runs);
const docker = new Docker({ socketPath: PODMAN_SOCKET });

// ---- the beacon: when the container's request arrives, its run is over ----
const arrivals = new Map<string, (at: number) => void>();
const beacon = createServer((req, res) => {
  const at = performance.now();
  const id = req.url?.split('/').pop() ?? '';
  res.end('ok');
  arrivals.get(id)?.(at);
});
await new Promise<void>(r => beacon.listen(0, '0.0.0.0', r));
const port = (beacon.address() as { port: number }).port;
// Each path's container calls its own network's gateway (a project's network
// is isolated from the default bridge), found inside the container alike.
const command = (id: string) => [
  'sh',
  '-c',
  `gw=$(ip route | awk '/^default/ {print $3}'); wget -q -O /dev/null http://$gw:${port}/ready/${id}`,
];

let seq = 0;
/** Runs `start` and resolves with ms from its call to the container's request. */
async function timed(start: (id: string) => Promise<unknown>): Promise<number> {
  const id = `r${++seq}-${process.pid}`;
  const arrived = new Promise<number>((resolve, reject) => {
    arrivals.set(id, resolve);
    setTimeout(() => reject(new Error(`run ${id}: no request from the container within 60 s`)), 60_000).unref();
  });
  const t0 = performance.now();
  await start(id);
  const t1 = await arrived;
  arrivals.delete(id);
  return t1 - t0;
}

// ---- Strata: a server and an agent as child processes ----
const dir = tempDir('strata-bench-start-');
const srv = await startServerProcess(dir);
const admin = client(srv.url, srv.adminToken);
const { agent, host } = await startLocalAgent(srv, { dataDir: dir, name: 'bench-node' });
await docker
  .getImage(TEST_IMAGE)
  .inspect()
  .catch(async () => {
    await new Promise<void>((resolve, reject) => {
      void docker
        .pull(TEST_IMAGE)
        .then(
          (s: NodeJS.ReadableStream) => docker.modem.followProgress(s, err => (err ? reject(err) : resolve())),
          reject,
        );
    });
  });

const resources = { vcpus: 1, memoryMib: 64, diskGib: 0 };
// After each timed run the path's own follow-up work (the agent reporting the
// exit, the CLI removing its container) is awaited, so it never overlaps the
// next path's timing on this 2-core machine.
const strataIds: string[] = [];
const strata = async () => {
  const ms = await timed(async id => {
    const res = await admin.post('/v1/instances', {
      project: 'default',
      kind: 'container',
      image: TEST_IMAGE,
      resources,
      command: command(id),
    });
    if (res.status !== 201) throw new Error(`create answered ${res.status}: ${JSON.stringify(res.body)}`);
    strataIds.push(res.body.id);
  });
  const last = strataIds.at(-1)!;
  await until('the instance ends', async () =>
    (await admin.get(`/v1/instances/${last}`)).body.state === 'stopped' ? true : undefined,
  );
  return ms;
};

/** The create request the agent sends, for the same spec (on the same project network, which Strata's warm-up makes). */
const defaultProject = (await admin.get('/v1/projects/default')).body.id as string;
const spec = (id: string) =>
  driverSpec({
    id: `bench_${id}`,
    name: `bench-${id}`,
    project: defaultProject,
    host: host.id,
    image: TEST_IMAGE,
    command: command(id),
    env: {},
    resources,
  });
const bareIds: string[] = [];
const podmanApi = async () => {
  const ms = await timed(async id => {
    const c = await docker.createContainer(createOptions(spec(id)));
    bareIds.push(c.id);
    await c.start();
  });
  await docker.getContainer(bareIds.at(-1)!).wait();
  return ms;
};

const podmanRun = async () => {
  let exited: Promise<unknown> = Promise.resolve();
  const ms = await timed(async id => {
    // Timed from the spawn: the CLI's own start-up is part of what it costs.
    const child = spawn(
      'podman',
      ['run', '--rm', '--network', 'bridge', '--memory', '64m', TEST_IMAGE, ...command(id)],
      { stdio: 'ignore' },
    );
    exited = new Promise(r => child.once('exit', r));
  });
  await exited;
  return ms;
};

async function cleanup(): Promise<void> {
  for (const id of strataIds.splice(0)) await admin.delete(`/v1/instances/${id}`);
  for (const id of bareIds.splice(0))
    await docker
      .getContainer(id)
      .remove({ force: true })
      .catch(() => undefined);
}

const paths = [
  { name: 'Strata API (POST /v1/instances)', run: strata, ms: [] as number[] },
  { name: 'bare Podman API (create + start)', run: podmanApi, ms: [] as number[] },
  { name: '`podman run --rm` CLI', run: podmanRun, ms: [] as number[] },
];
const load = os.loadavg();
for (const p of paths) await p.run(); // warm-up, not recorded
await cleanup();
for (let i = 0; i < runs; i++) {
  for (const p of paths) {
    p.ms.push(await p.run());
    await new Promise(r => setTimeout(r, 200));
  }
  await cleanup();
  process.stderr.write(`\rround ${i + 1}/${runs}`);
}
process.stderr.write('\n');

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const f = (n: number) => n.toFixed(1);
const lines = [
  '| path | runs | median ms | p95 ms | min ms | max ms |',
  '|---|---:|---:|---:|---:|---:|',
  ...paths.map(
    p =>
      `| ${p.name} | ${p.ms.length} | ${f(pct(p.ms, 50))} | ${f(pct(p.ms, 95))} | ${f(Math.min(...p.ms))} | ${f(Math.max(...p.ms))} |`,
  ),
];
const overhead = pct(paths[0]!.ms, 50) - pct(paths[1]!.ms, 50);
const verdict = `Strata overhead against the bare Podman API: median ${overhead >= 0 ? '+' : ''}${f(overhead)} ms (target <= 25 ms: ${overhead <= 25 ? 'met' : 'not met'}).`;
console.log(lines.join('\n'));
console.log(verdict);

if (flags.record) {
  recordSection('container-start.ts', [
    machineLine(`Node ${process.version}`, `Podman's Docker API on ${PODMAN_SOCKET}`, loadNote(load)),
    `Command: \`node bench/container-start.ts --runs ${runs} --record\` (${TEST_IMAGE}, 64 MiB; Strata and the bare API on the project's isolated network, \`podman run\` on Podman's default bridge; time from the request to the container's first action, an HTTP request to the bench on its network's gateway; the three paths round-robin, one warm-up each).`,
    '',
    ...lines,
    '',
    verdict,
    '',
  ]);
  console.error('recorded in bench/RESULTS.md');
}

// The agent removes Strata's containers (and with the last, the project's network) before it goes.
await cleanup().catch(() => undefined);
await until('the agent removed its containers', async () =>
  (await admin.get('/v1/instances?limit=1000')).body.items.length === 0 ? true : undefined,
).catch(() => undefined);
agent.kill('SIGKILL');
await srv.stop();
removeDir(dir);
beacon.close();
