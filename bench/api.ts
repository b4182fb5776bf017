// API benchmark on loopback: Strata's reads and writes against the floor of
// the same stack (a bare Fastify answer, a bare SQLite point select), in one run.
//
//   node bench/api.ts [--duration 10] [--connections 32] [--record]
//
// The server runs as a child process (`strata server`) so it and the load
// generator each get a core of this 2-core machine. It runs with
// `--token-rate 0`: the load comes from one token, and what is measured is
// the API's own cost, not the per-token limit (1,000 requests/s by default).
import autocannon from 'autocannon';
import SQLite from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { client, removeDir, startServerProcess, tempDir } from '../test/helpers.ts';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    instances: { type: 'string', default: '1000' },
    record: { type: 'boolean', default: false },
  },
});
const duration = Number(flags.duration);
const connections = Number(flags.connections);
const seedCount = Number(flags.instances);

interface Row {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  bad: number;
  note?: string;
}
const rows: Row[] = [];

async function load(name: string, opts: Parameters<typeof autocannon>[0], note?: string): Promise<void> {
  await autocannon({ ...opts, connections, duration: 2 }); // warm-up, not recorded
  const r = await autocannon({ ...opts, connections, duration });
  const bad = r.errors + r.timeouts + r.non2xx;
  rows.push({ name, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, bad, ...(note ? { note } : {}) });
  console.error(
    `${name}: ${Math.round(r.requests.average)} req/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, non-2xx/errors ${bad}`,
  );
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

const dataDir = tempDir('strata-bench-');
const server = await startServerProcess(dataDir, ['--token-rate', '0']);
const api = client(server.url, server.adminToken);
const auth = { authorization: `Bearer ${server.adminToken}` };
try {
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
  const one = ids[Math.floor(ids.length / 2)]!;
  const oneBody = JSON.stringify((await api.get(`/v1/instances/${one}`)).body);

  // Floors first, while the machine is quiet.
  const bare = await bareFastify(oneBody);
  await load('bare Fastify GET (floor)', { url: bare.url });
  bare.stop();

  const sqlite = new SQLite(join(dataDir, 'strata.db'), { readonly: true });
  const stmt = sqlite.prepare('SELECT * FROM instances WHERE id = ?');
  const n = 200_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) stmt.get(ids[i % ids.length]);
  const selectRate = n / ((performance.now() - t0) / 1000);
  sqlite.close();
  rows.push({
    name: 'bare better-sqlite3 point select (floor, in-process)',
    rps: selectRate,
    p50: 0,
    p99: 0,
    bad: 0,
    note: 'ops/s, no HTTP',
  });
  console.error(`bare SQLite point select: ${Math.round(selectRate)} ops/s`);

  await load('GET /v1/instances/:id', { url: `${server.url}/v1/instances/${one}`, headers: auth });
  await load('GET /v1/instances?limit=100 (list page)', {
    url: `${server.url}/v1/instances?project=${project}&limit=100`,
    headers: auth,
  });
  await load('GET /v1/instances?limit=1000 (all 1,000)', {
    url: `${server.url}/v1/instances?project=${project}&limit=1000`,
    headers: auth,
  });
  await load('POST /v1/instances (create)', {
    url: `${server.url}/v1/instances`,
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ project, kind: 'container', image: 'busybox' }),
  });
} finally {
  await server.stop();
  removeDir(dataDir);
}

const targets: Record<string, string> = {
  'GET /v1/instances/:id': 'reads >= 10,000/s, p99 < 20 ms',
  'POST /v1/instances (create)': 'creates >= 2,000/s, p99 < 20 ms',
};
const met = (r: Row): string => {
  if (r.name.startsWith('GET /v1/instances/:id')) return r.rps >= 10_000 && r.p99 < 20 ? 'met' : 'not met';
  if (r.name.startsWith('POST')) return r.rps >= 2_000 && r.p99 < 20 ? 'met' : 'not met';
  return '';
};
const table = [
  '| what | req/s | p50 ms | p99 ms | non-2xx | target |',
  '|---|---:|---:|---:|---:|---|',
  ...rows.map(
    r =>
      `| ${r.name} | ${Math.round(r.rps).toLocaleString('en')}${r.note ? ` (${r.note})` : ''} | ${r.p50 || '-'} | ${r.p99 || '-'} | ${r.bad} | ${targets[r.name] ? `${targets[r.name]}: ${met(r)}` : ''} |`,
  ),
].join('\n');
console.log(table);

if (flags.record) {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const section = [
    '',
    `## ${new Date().toISOString()}: bench/api.ts`,
    '',
    `Machine: ${cpu}, ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average before the run ${os
      .loadavg()
      .map(l => l.toFixed(2))
      .join(' ')}.`,
    `Command: \`node bench/api.ts --duration ${duration} --connections ${connections} --record\` (autocannon, ${connections} connections, ${duration} s per row after a 2 s warm-up; ${seedCount} instances seeded; server as a child process; request logging is off).`,
    '',
    table,
    '',
  ].join('\n');
  appendFileSync(join(import.meta.dirname, 'RESULTS.md'), section);
  console.error('recorded in bench/RESULTS.md');
}
if (rows.some(r => r.bad > 0)) {
  console.error('some requests failed');
  process.exit(1);
}
