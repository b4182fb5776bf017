// API benchmark on loopback: Strata's reads and writes, each row beside the
// floor of the same stack (a bare Fastify answer, a bare SQLite point select)
// measured just before it, so drift during the run shows.
//
//   node bench/api.ts [--duration 10] [--connections 32] [--hosts 50] [--no-admission-only] [--record]
//
// The server runs as a child process (`strata server`), with a simulated
// fleet (`strata agent --sim N`) as a second one, so a create is admitted,
// then placed by the placer and assigned to a host that runs it while the
// load goes on; after the create row the run waits until every instance runs.
// A last row, on a second server with no hosts, is admission alone
// (--no-admission-only leaves it out: bench/profile.ts wants one server). Servers
// run with `--token-rate 0`: the load comes from one token, and what is
// measured is the API's own cost, not the per-token limit.
import autocannon from 'autocannon';
import SQLite from 'better-sqlite3';
import { spawn } from 'node:child_process';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { client, removeDir, type ServerProcess, startServerProcess, tempDir } from '../test/helpers.ts';
import { loadNote, loads, machineLine, recordSection } from './record.ts';
import { readyHosts, type SimFleet, startSimFleet, tally } from './sim-fleet.ts';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    instances: { type: 'string', default: '1000' },
    hosts: { type: 'string', default: '50' },
    'admission-only': { type: 'boolean', default: true },
    record: { type: 'boolean', default: false },
  },
  allowNegative: true,
});
const duration = Number(flags.duration);
const connections = Number(flags.connections);
const seedCount = Number(flags.instances);
const hostCount = Number(flags.hosts);
const loadBefore = os.loadavg();

interface Measure {
  rps: number;
  p50: number;
  p99: number;
  bad: number;
}
interface Row extends Measure {
  name: string;
  /** the bare Fastify GET and the SQLite point select, measured just before the row */
  floor: { http: number; sqlite: number };
  target?: { text: string; met: boolean };
}
const rows: Row[] = [];
const f = (n: number) => Math.round(n).toLocaleString('en');

async function measure(name: string, opts: Parameters<typeof autocannon>[0], warm: boolean): Promise<Measure> {
  if (warm) await autocannon({ ...opts, connections, duration: 2 }); // warm-up, not recorded
  const r = await autocannon({ ...opts, connections, duration });
  const m = { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, bad: r.errors + r.timeouts + r.non2xx };
  console.error(`${name}: ${f(m.rps)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms, non-2xx/errors ${m.bad}`);
  return m;
}

/** Bare Fastify answering a JSON object of the size of an instance: the HTTP floor. */
async function bareFastify(body: string): Promise<{ url: string; stop: () => void }> {
  const script = `
    import Fastify from 'fastify';
    const app = Fastify();
    const body = JSON.parse(process.env.BODY);
    app.get('/x', async () => body);
    await app.listen({ host: '127.0.0.1', port: 0 });
    console.log(app.server.address().port);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: join(import.meta.dirname, '..'),
    env: { ...process.env, BODY: body },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<string>(resolve =>
    child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())),
  );
  return { url: `http://127.0.0.1:${port}/x`, stop: () => child.kill() };
}

/** Waits until none of the project's instances is on its way to running; the tally and the seconds it took. */
async function settled(
  srv: { url: string; adminToken: string },
  project: string,
): Promise<{ by: Record<string, number>; s: number }> {
  const t0 = performance.now();
  const deadline = Date.now() + 300_000;
  for (;;) {
    const by = await tally(srv, project);
    if (!by.pending && !by.scheduled && !by.starting) return { by, s: (performance.now() - t0) / 1000 };
    if (Date.now() > deadline) throw new Error(`instances still on their way after 300 s: ${JSON.stringify(by)}`);
    await new Promise(r => setTimeout(r, 250));
  }
}

const dataDir = tempDir('strata-bench-');
const bareDir = tempDir('strata-bench-bare-');
let server: ServerProcess | undefined;
let bareServer: ServerProcess | undefined;
let fleet: SimFleet | undefined;
let floorHttp: { url: string; stop: () => void } | undefined;
let sqlite: SQLite.Database | undefined;
const notes: string[] = [];
try {
  server = await startServerProcess(dataDir, ['--token-rate', '0']);
  const api = client(server.url, server.adminToken);
  const auth = { authorization: `Bearer ${server.adminToken}` };
  // Room for every create of the run: what is measured is never a full cluster.
  fleet = await startSimFleet(server, {
    hosts: hostCount,
    dataDir,
    extra: ['--sim-cpus', '4096', '--sim-memory', String(1 << 24), '--sim-disk', String(1 << 20)],
  });
  const s = server;
  const tFleet = performance.now();
  while ((await readyHosts(s)) < hostCount) {
    if (performance.now() - tFleet > 120_000) throw new Error(`${hostCount} hosts not ready after 120 s`);
    await new Promise(r => setTimeout(r, 200));
  }
  console.error(`${hostCount} simulated hosts ready`);

  console.error(`seeding ${seedCount} instances...`);
  const project = (await api.post('/v1/projects', { name: 'bench' })).body.id as string;
  const ids: string[] = [];
  for (let i = 0; i < seedCount; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, seedCount - i) }, (_, j) =>
        api.post('/v1/instances', {
          project,
          kind: 'container',
          image: 'busybox',
          name: `seed-${i + j}`,
          labels: { tier: i % 2 ? 'web' : 'db' },
        }),
      ),
    );
    for (const r of batch) {
      if (r.status !== 201) throw new Error(`seeding failed: ${r.status} ${JSON.stringify(r.body)}`);
      ids.push(r.body.id);
    }
  }
  const seeded = await settled(s, project);
  if (seeded.by.running !== seedCount) throw new Error(`seeds did not all run: ${JSON.stringify(seeded.by)}`);
  const one = ids[Math.floor(ids.length / 2)]!;
  const oneBody = JSON.stringify((await api.get(`/v1/instances/${one}`)).body);

  floorHttp = await bareFastify(oneBody);
  await autocannon({ url: floorHttp.url, connections, duration: 2 }); // warm-up, not recorded
  sqlite = new SQLite(join(dataDir, 'strata.db'), { readonly: true });
  const stmt = sqlite.prepare('SELECT * FROM instances WHERE id = ?');
  const floorUrl = floorHttp.url;
  /** Both floors, just before a row. */
  const floors = async (): Promise<Row['floor']> => {
    const http = await measure('  floor: bare Fastify GET', { url: floorUrl }, false);
    const n = 200_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) stmt.get(ids[i % ids.length]);
    const ops = n / ((performance.now() - t0) / 1000);
    console.error(`  floor: bare SQLite point select: ${f(ops)} ops/s`);
    return { http: http.rps, sqlite: ops };
  };
  const row = async (
    name: string,
    opts: Parameters<typeof autocannon>[0],
    target?: (m: Measure) => Row['target'],
  ): Promise<Row> => {
    const floor = await floors();
    const m = await measure(name, opts, true);
    const r: Row = { name, ...m, floor, ...(target ? { target: target(m) } : {}) };
    rows.push(r);
    return r;
  };

  const withFleet = `the ${hostCount}-host simulated fleet heartbeating behind it`;
  await row(`GET /v1/instances/:id (${withFleet})`, { url: `${s.url}/v1/instances/${one}`, headers: auth }, m => ({
    text: 'reads >= 10,000/s, p99 < 20 ms',
    met: m.rps >= 10_000 && m.p99 < 20,
  }));
  await row(`GET /v1/instances?limit=100 (a list page; ${withFleet})`, {
    url: `${s.url}/v1/instances?project=${project}&limit=100`,
    headers: auth,
  });
  await row(`GET /v1/instances?limit=1000 (all ${f(seedCount)}; ${withFleet})`, {
    url: `${s.url}/v1/instances?project=${project}&limit=1000`,
    headers: auth,
  });
  const createProject = (await api.post('/v1/projects', { name: 'bench-creates' })).body.id as string;
  const create = {
    method: 'POST' as const,
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ project: createProject, kind: 'container', image: 'busybox' }),
  };
  await row(
    `POST /v1/instances: admitted; placed and assigned by the placer and the ${hostCount}-host fleet behind it during the run`,
    { url: `${s.url}/v1/instances`, ...create },
    m => ({ text: 'creates >= 2,000/s, p99 < 20 ms', met: m.rps >= 2_000 && m.p99 < 20 }),
  );
  const created = await settled(s, createProject);
  const total = Object.values(created.by).reduce((a, b) => a + b, 0);
  notes.push(
    `After the create row (warm-up included): ${f(created.by.running ?? 0)} of ${f(total)} created instances running, ${f(created.by.failed ?? 0)} failed; none was still pending, scheduled or starting ${created.s.toFixed(1)} s after the load stopped.`,
  );
  console.error(notes.at(-1));
  if ((created.by.running ?? 0) !== total)
    throw new Error(`created instances did not all run: ${JSON.stringify(created.by)}`);
  await fleet.stop();
  await server.stop();

  if (flags['admission-only']) {
    // Admission alone: a second server with no hosts, where every create stays pending.
    bareServer = await startServerProcess(bareDir, ['--token-rate', '0']);
    const bareApi = client(bareServer.url, bareServer.adminToken);
    const bareProject = (await bareApi.post('/v1/projects', { name: 'bench' })).body.id as string;
    await row('POST /v1/instances: admission only (a second server with no hosts: stays pending, never placed)', {
      url: `${bareServer.url}/v1/instances`,
      method: 'POST',
      headers: { authorization: `Bearer ${bareServer.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ project: bareProject, kind: 'container', image: 'busybox' }),
    });
  }
} catch (err) {
  const log = fleet?.tail();
  if (log) console.error(`the fleet's last log lines:\n${log}`);
  console.error(err);
  process.exitCode = 1;
} finally {
  sqlite?.close();
  floorHttp?.stop();
  await fleet?.stop();
  await server?.stop();
  await bareServer?.stop();
  removeDir(dataDir);
  removeDir(bareDir);
}
const loadAfter = os.loadavg();

const table = [
  '| what | req/s | p50 ms | p99 ms | non-2xx | floor just before: bare Fastify GET req/s | floor just before: SQLite point select ops/s (in-process) | target |',
  '|---|---:|---:|---:|---:|---:|---:|---|',
  ...rows.map(
    r =>
      `| ${r.name} | ${f(r.rps)} | ${r.p50} | ${r.p99} | ${r.bad} | ${f(r.floor.http)} | ${f(r.floor.sqlite)} | ${r.target ? `${r.target.text}: ${r.target.met ? 'met' : 'not met'}` : ''} |`,
  ),
].join('\n');
console.log(table);
for (const n of notes) console.log(n);
console.log(`Load average before the run ${loads(loadBefore)}, after ${loads(loadAfter)}.`);

if (flags.record && process.exitCode !== 1) {
  recordSection('api.ts', [
    machineLine(`Node ${process.version}`, loadNote(loadBefore, loadAfter, 'after')),
    `Command: \`node bench/api.ts --duration ${duration} --connections ${connections} --hosts ${hostCount}${flags['admission-only'] ? '' : ' --no-admission-only'} --record\` (autocannon, ${connections} connections, ${duration} s per row after a 2 s warm-up, each row just after its floors; ${seedCount} instances seeded and running; server and a ${hostCount}-host simulated fleet as child processes, so creates are placed and run during the load; ${flags['admission-only'] ? 'the last row on a second server with no hosts; ' : ''}request logging is off).`,
    '',
    table,
    '',
    ...notes,
    '',
  ]);
  console.error('recorded in bench/RESULTS.md');
}
if (rows.some(r => r.bad > 0)) {
  console.error('some requests failed');
  process.exitCode = 1;
}
