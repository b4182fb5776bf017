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
      (await admin.post('/v1/projects', { name: 'keep', labels: { team: 'x' }, quota: { instances: 1000 } })).status,
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
    const snapshot = async () => ({
      projects: (await admin.get('/v1/projects')).body.items.map(({ usage: _, ...p }: Record<string, unknown>) => p),
      users: (await admin.get('/v1/users')).body.items,
      hosts: (await admin.get('/v1/hosts')).body.items.map((h: Record<string, unknown>) => ({
        id: h.id,
        name: h.name,
        capacity: h.capacity,
      })),
      tokens: (await admin.get('/v1/tokens?user=kim')).body.items,
    });
    const before = await snapshot();
    const lastSeq = (await admin.get('/v1/events?limit=1000')).body.nextSince as number;

    // Creates keep coming from several clients at once; the server is killed the
    // moment the 30th is acknowledged, with the others still in flight.
    const acked: { id: string; name: string }[] = [];
    let sent = 0;
    let inFlightAtKill = -1;
    let inFlight = 0;
    const worker = async () => {
      while (inFlightAtKill < 0) {
        const name = `i${sent++}`;
        inFlight++;
        const r = await kim()
          .post('/v1/instances', { project: 'keep', kind: 'container', image: 'busybox', name, labels: { n: name } })
          .catch(() => undefined);
        inFlight--;
        if (!r) return; // cut off by the kill: never acknowledged
        if (inFlightAtKill >= 0) {
          if (r.status === 201) acked.push({ id: r.body.id, name });
          return;
        }
        assert.equal(r.status, 201, JSON.stringify(r.body));
        acked.push({ id: r.body.id, name });
        if (acked.length === 30) {
          inFlightAtKill = inFlight;
          srv.child.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await srv.stop('SIGKILL');
    assert.ok(inFlightAtKill > 0, 'creates were in flight when the server was killed');

    srv = await startServerProcess(dir);
    admin = client(srv.url, srv.adminToken);
    assert.equal(readFileSync(join(dir, 'admin.token'), 'utf8'), tokenFile, 'the admin token is not regenerated');
    assert.deepEqual(await snapshot(), before);
    const kept = (await admin.get('/v1/instances?project=keep&limit=1000')).body.items as {
      id: string;
      name: string;
      labels: Record<string, string>;
    }[];
    for (const a of acked)
      assert.deepEqual(
        kept.filter(i => i.id === a.id).map(i => [i.name, i.labels.n]),
        [[a.name, a.name]],
        `acknowledged create ${a.name} survived`,
      );
    assert.equal((await kim().get('/v1/whoami')).body.name, 'kim', 'tokens still work');
    assert.equal(
      (await client(srv.url, reg.body.token).post('/v1/agent/heartbeat', {})).status,
      200,
      'agent credentials too',
    );
    assert.equal(
      (await admin.get('/v1/projects/keep')).body.usage.instances,
      kept.length,
      'quota usage survived with the instances it counts',
    );
    assert.equal((await admin.post('/v1/projects', { name: 'after-restart' })).status, 201);
    const events = (await admin.get(`/v1/events?since=${lastSeq}&limit=1000`)).body.items as {
      seq: number;
      type: string;
      resourceId: string;
    }[];
    assert.deepEqual(
      events
        .filter(e => e.type === 'instance.created')
        .map(e => e.resourceId)
        .sort(),
      kept.map(i => i.id).sort(),
      'one creation event for each instance kept',
    );
    const created = events.filter(e => e.type === 'project.created');
    assert.equal(created.length, 1);
    assert.ok(
      events.every(e => e.type !== 'instance.created' || e.seq < created[0]!.seq),
      'the event log continues after the restart',
    );
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
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  // The agent logs to standard output.
  let agentLog = '';
  agent.stdout!.on('data', (d: Buffer) => (agentLog += d.toString()));
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

    const logged = agentLog.length;
    await srv.stop('SIGKILL');
    // The agent has found the server gone (its watch failed) and, still there,
    // tried again.
    await until('the agent retries twice', async () =>
      (agentLog.slice(logged).match(/assignment watch failed; retrying/g)?.length ?? 0) >= 2 ? true : undefined,
    );
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
