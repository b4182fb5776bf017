// A server killed with -9 and started again on the same data loses nothing
// it acknowledged, keeps its admin token, and disturbs no running workload.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { client, startServerProcess, tempDir, until } from './helpers.ts';

test('everything acknowledged survives kill -9 and a restart', async () => {
  const dir = tempDir('strata-restart-');
  let srv = await startServerProcess(dir);
  try {
    const tokenFile = readFileSync(join(dir, 'admin.token'), 'utf8');
    let admin = client(srv.url, srv.adminToken);
    assert.equal(
      (await admin.post('/v1/projects', { name: 'keep', labels: { team: 'x' }, quota: { instances: 5 } })).status,
      201,
    );
    assert.equal(
      (await admin.post('/v1/users', { name: 'kim', projects: [{ project: 'keep', role: 'member' }] })).status,
      201,
    );
    const tok = await admin.post('/v1/tokens', { name: 'kim-t', user: 'kim' });
    assert.equal(tok.status, 201);
    const kim = () => client(srv.url, tok.body.secret);
    const jt = await admin.post('/v1/join-tokens', {});
    const reg = await admin.post('/v1/agent/register', {
      joinToken: jt.body.secret,
      name: 'n1',
      fingerprint: { capacity: { vcpus: 2, memoryMib: 1024, diskGib: 5 }, drivers: ['container'] },
    });
    assert.equal(reg.status, 201);
    // Acknowledged writes fired concurrently, then the process is killed at once.
    const made = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        kim().post('/v1/instances', {
          project: 'keep',
          kind: 'container',
          image: 'busybox',
          name: `i${i}`,
          labels: { n: String(i) },
        }),
      ),
    );
    assert.ok(made.every(r => r.status === 201));
    const snapshot = async () => ({
      projects: (await admin.get('/v1/projects')).body.items,
      users: (await admin.get('/v1/users')).body.items,
      instances: (await admin.get('/v1/instances?limit=1000')).body.items.map((i: Record<string, unknown>) => ({
        ...i,
      })),
      hosts: (await admin.get('/v1/hosts')).body.items.map((h: Record<string, unknown>) => ({
        id: h.id,
        name: h.name,
        capacity: h.capacity,
      })),
      tokens: (await admin.get('/v1/tokens?user=kim')).body.items,
    });
    // The placer has acted on all five (placed, or failed for want of room): the state compared is the final one.
    await until('the placer is done', async () =>
      (await admin.get('/v1/instances?limit=1000')).body.items.every((i: { state: string }) => i.state !== 'pending')
        ? true
        : undefined,
    );
    const before = await snapshot();
    const lastSeq = (await admin.get('/v1/events?limit=1000')).body.nextSince as number;
    await srv.stop('SIGKILL');

    srv = await startServerProcess(dir);
    admin = client(srv.url, srv.adminToken);
    assert.equal(readFileSync(join(dir, 'admin.token'), 'utf8'), tokenFile, 'the admin token is not regenerated');
    assert.deepEqual(await snapshot(), before);
    assert.equal((await kim().get('/v1/whoami')).body.name, 'kim', 'tokens still work');
    assert.equal(
      (await client(srv.url, reg.body.token).post('/v1/agent/heartbeat', {})).status,
      200,
      'agent credentials too',
    );
    const after = await kim().post('/v1/instances', {
      project: 'keep',
      kind: 'container',
      image: 'busybox',
      name: 'later',
    });
    assert.equal(after.status, 422, 'quota usage survived: 5 of 5 taken');
    assert.equal((await admin.post('/v1/projects', { name: 'after-restart' })).status, 201);
    const events = (await admin.get(`/v1/events?since=${lastSeq}`)).body.items as { seq: number; type: string }[];
    assert.deepEqual(
      events.map(e => e.type),
      ['project.created'],
    );
    assert.ok(events[0]!.seq > lastSeq, 'the event log continues after the restart');
  } finally {
    await srv.stop('SIGKILL');
  }
});

test('a server killed with -9 under a running container: the workload runs on, the agent reconnects, streams work again', async () => {
  const { spawn } = await import('node:child_process');
  const { createServer } = await import('node:net');
  const { PODMAN_SOCKET, TEST_IMAGE, strataBin } = await import('./helpers.ts');
  // A fixed port, so the agent finds the restarted server where it was.
  const probe = createServer();
  await new Promise<void>(r => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as { port: number }).port;
  await new Promise(r => probe.close(r));
  const dir = tempDir('strata-restart-ctr-');
  const listen = ['--listen', `127.0.0.1:${port}`];
  let srv = await startServerProcess(dir, listen);
  const admin = () => client(srv.url, srv.adminToken);
  const joinToken = (await admin().post('/v1/join-tokens', {})).body.secret as string;
  const agent = spawn(
    strataBin,
    [
      'agent',
      '--server',
      srv.url,
      '--data',
      join(dir, 'agent'),
      '--name',
      'restart-node',
      '--docker-socket',
      PODMAN_SOCKET,
      '--log-level',
      'warn',
      '--join-token',
      joinToken,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  let id = '';
  try {
    await until('host ready', async () =>
      (await admin().get('/v1/hosts')).body.items.find(
        (h: { state: string; drivers: string[] }) => h.state === 'ready' && h.drivers.includes('container'),
      ),
    );
    const made = await admin().post('/v1/instances', {
      project: 'default',
      kind: 'container',
      image: TEST_IMAGE,
      resources: { memoryMib: 64 },
      command: ['sh', '-c', 'echo before; sleep 600'],
      stopGraceSeconds: 1,
    });
    id = made.body.id;
    await until('running', async () =>
      (await admin().get(`/v1/instances/${id}`)).body.state === 'running' ? true : undefined,
    );

    await srv.stop('SIGKILL');
    await new Promise(r => setTimeout(r, 1500));
    assert.equal(agent.exitCode, null, 'the agent waits for the server');
    srv = await startServerProcess(dir, listen);

    const logs = await until('logs through the restarted server', async () => {
      const res = await admin().get(`/v1/instances/${id}/logs`);
      return res.status === 200 ? JSON.stringify(res.body) : undefined;
    });
    assert.match(logs, /before/);
    const i = (await admin().get(`/v1/instances/${id}`)).body;
    assert.equal(i.state, 'running', 'the workload was never touched');
    assert.equal(i.restarts, 0);
    assert.equal((await admin().post(`/v1/instances/${id}/stop`)).status, 202);
    await until('stopped by the agent after the restart', async () =>
      (await admin().get(`/v1/instances/${id}`)).body.state === 'stopped' ? true : undefined,
    );
  } finally {
    agent.kill('SIGKILL');
    const Docker = (await import('dockerode')).default;
    const docker = new Docker({ socketPath: PODMAN_SOCKET });
    for (const c of await docker.listContainers({ all: true, filters: { label: [`io.strata.instance=${id}`] } }))
      await docker.getContainer(c.Id).remove({ force: true });
    await srv.stop('SIGKILL');
  }
});
