// Shutting the server down while agents wait on their assignments.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { startServer } from './server.ts';

const start = (dataDir: string, limits?: Parameters<typeof startServer>[0]['limits']) =>
  startServer({ dataDir, host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }), limits });

test("closing the server answers agents' waiting long-polls instead of waiting them out", {
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-server-unit-'));
  const server = await start(dir);
  let closed = false;
  try {
    const admin = readFileSync(server.adminTokenFile, 'utf8').trim();
    const post = async (path: string, body: unknown, token: string) => {
      const res = await fetch(server.url + path, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return (await res.json()) as Record<string, unknown>;
    };
    const join = (await post('/v1/join-tokens', {}, admin)).secret as string;
    const fingerprint = {
      drivers: ['container'],
      capacity: { vcpus: 2, memoryMib: 2048, diskGib: 10 },
      allocatable: { vcpus: 2, memoryMib: 1024, diskGib: 10 },
      topology: { region: '', zone: '', rack: '' },
      labels: {},
      info: {},
    };
    const agent = (await post('/v1/agent/register', { joinToken: join, name: 'h1', fingerprint }, '')).token as string;
    const assignments = (version?: string) =>
      fetch(`${server.url}/v1/agent/assignments?waitSeconds=300${version ? `&version=${version}` : ''}`, {
        headers: { authorization: `Bearer ${agent}` },
      });
    const { version } = (await (await assignments()).json()) as { version: string };
    const waiting = assignments(version);
    while (server.agents.waiting === 0) await new Promise(r => setTimeout(r, 5));
    const t0 = Date.now();
    closed = true;
    await server.close();
    const answer = await waiting;
    assert.equal(answer.status, 200);
    assert.ok(Date.now() - t0 < 10_000, `the shutdown took ${Date.now() - t0} ms`);
  } finally {
    if (!closed) await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the listening socket queues as many connections as the server takes, not Node’s 511', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-server-unit-'));
  const server = await start(dir, { maxConnections: 2000 });
  try {
    const port = new URL(server.url).port;
    // For a listening socket, ss shows its backlog in the Send-Q column.
    const line = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).trim();
    assert.equal(line.split(/\s+/)[2], '2000', line);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
