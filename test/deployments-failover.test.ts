// A deployment's replicas when their host goes away, for real: two agents on
// Podman, one killed with SIGKILL. Its replicas keep their slots for the
// grace, are replaced on the other host after it, and when the killed agent
// comes back it removes the replicas replaced meanwhile (their containers ran
// on all along, with no agent to stop them). Then a drain moves every replica
// off a host, which ends empty.
import { strict as assert } from 'node:assert';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Docker from 'dockerode';
import { HOST_LABEL, INSTANCE_LABEL } from '../src/drivers/container/driver.ts';
import {
  type Client,
  client,
  cliEnv,
  deploymentReplicas,
  killProcessesMentioning,
  PODMAN_SOCKET,
  removeDir,
  runCli,
  spawnAgentProcess,
  startTestServer,
  TEST_IMAGE,
  type ReplicaSeen,
  type TestServer,
  tempDir,
  until,
} from './helpers.ts';

const docker = new Docker({ socketPath: PODMAN_SOCKET });
const dir = tempDir('strata-failover-');
const GRACE = 5;

let srv: TestServer;
let admin: Client;
let joinToken: string;
const agents = new Map<string, { data: string; child: ChildProcess; hostId: string }>();

function spawnAgent(name: string): ChildProcess {
  const a = agents.get(name)!;
  a.child = spawnAgentProcess({ server: srv.url, joinToken, dataDir: a.data, name });
  return a.child;
}

async function startAgent(name: string): Promise<string> {
  agents.set(name, { data: tempDir(`strata-failover-${name}-`), child: undefined as never, hostId: '' });
  spawnAgent(name);
  const host = await until(`host ${name} ready`, async () => {
    const hosts = (await admin.get('/v1/hosts')).body.items as { id: string; name: string; state: string }[];
    return hosts.find(h => h.name === name && h.state === 'ready');
  });
  agents.get(name)!.hostId = host.id;
  return host.id;
}

/** The replicas of deployment `web` that are to run. */
const replicasOf = async (): Promise<ReplicaSeen[]> =>
  (await deploymentReplicas(admin, 'web')).filter(r => r.desiredState === 'running');

/** The ids of the instances whose containers run on `hostId`, as Podman sees them. */
async function runningOn(hostId: string): Promise<string[]> {
  const list = await docker.listContainers({ filters: { label: [`${HOST_LABEL}=${hostId}`] } });
  return list.map(c => c.Labels[INSTANCE_LABEL]!).sort();
}

const strata = (...args: string[]) =>
  runCli(args, cliEnv(join(dir, 'config.yaml'), dir, { STRATA_URL: srv.url, STRATA_TOKEN: srv.adminToken }));

before(async () => {
  srv = await startTestServer({ heartbeatSeconds: 1 });
  admin = client(srv.url, srv.adminToken);
  joinToken = (await admin.post('/v1/join-tokens', {})).body.secret as string;
});

after(async () => {
  for (const [, a] of agents) {
    a.child.kill('SIGKILL');
    killProcessesMentioning(a.data);
    for (const c of await docker.listContainers({ all: true, filters: { label: [`${HOST_LABEL}=${a.hostId}`] } }))
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
  }
  await srv.close();
  for (const [, a] of agents) removeDir(a.data);
  removeDir(dir);
});

test('kill -9 an agent: its replicas are replaced after the grace, and removed from it when it is back', async () => {
  const a = await startAgent('fo-a');
  const file = join(dir, 'web.yaml');
  writeFileSync(
    file,
    `apiVersion: strata/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  template:
    kind: container
    image: ${TEST_IMAGE}
    command: [sleep, "3600"]
    stopGraceSeconds: 1
    resources: {vcpus: 1, memoryMib: 64}
  strategy: {maxSurge: 1, maxUnavailable: 1, lostGraceSeconds: ${GRACE}}
`,
  );
  const applied = await strata('apply', '-f', file, '--wait');
  assert.equal(applied.code, 0, applied.stderr);
  const first = await replicasOf();
  assert.deepEqual(
    first.map(r => [r.slot, r.state, r.host]),
    [
      [0, 'running', a],
      [1, 'running', a],
    ],
  );
  assert.deepEqual(await runningOn(a), first.map(r => r.id).sort());
  const b = await startAgent('fo-b');

  agents.get('fo-a')!.child.kill('SIGKILL');
  const replaced = await until(
    'both replicas running on fo-b',
    async () => {
      const rs = await replicasOf();
      return rs.length === 2 && rs.every(r => r.host === b && r.state === 'running') ? rs : undefined;
    },
    90_000,
  );
  assert.deepEqual(
    replaced.map(r => r.slot),
    [0, 1],
  );
  // Replaced only once fo-a had been silent for the grace.
  const hostA = (await admin.get(`/v1/hosts/${a}`)).body as { state: string; lastHeartbeatAt: string };
  assert.notEqual(hostA.state, 'ready');
  const events = (
    (await admin.get('/v1/events?limit=1000')).body.items as {
      type: string;
      at: string;
      data: { reason: string; instance: string };
    }[]
  ).filter(e => e.type === 'deployment.replica-replaced');
  assert.deepEqual(
    events.map(e => e.data.reason),
    ['lost', 'lost'],
  );
  for (const e of events)
    assert.ok(
      Date.parse(e.at) - Date.parse(hostA.lastHeartbeatAt) >= GRACE * 1000,
      `replaced ${Date.parse(e.at) - Date.parse(hostA.lastHeartbeatAt)} ms after fo-a's last heartbeat`,
    );
  // With no agent on fo-a, its containers ran on: nobody could stop them.
  assert.deepEqual(await runningOn(a), first.map(r => r.id).sort());
  const gone = (await admin.get('/v1/instances?limit=100')).body.items as { id: string; state: string }[];
  for (const r of first) assert.equal(gone.find(i => i.id === r.id)?.state, 'deleting');

  // fo-a is back: the replaced replicas are removed there, and their instances are gone.
  spawnAgent('fo-a');
  await until('fo-a fenced', async () => ((await runningOn(a)).length === 0 ? true : undefined));
  await until('the replaced instances gone', async () => {
    const left = (await admin.get('/v1/instances?limit=100')).body.items as { id: string }[];
    return first.some(r => left.some(i => i.id === r.id)) ? undefined : true;
  });
  assert.deepEqual(await runningOn(b), replaced.map(r => r.id).sort());
  await until('fo-a ready', async () =>
    (await admin.get(`/v1/hosts/${a}`)).body.state === 'ready' ? true : undefined,
  );
});

test('a drained host ends empty: its replicas move one batch at a time, never below replicas - maxUnavailable', async () => {
  const a = agents.get('fo-a')!.hostId;
  const b = agents.get('fo-b')!.hostId;
  const before = await replicasOf();
  assert.ok(before.every(r => r.host === b));
  let fewest = Number.POSITIVE_INFINITY;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const rs = await replicasOf();
      fewest = Math.min(fewest, rs.filter(r => r.state === 'running').length);
      await new Promise(r => setImmediate(r));
    }
  })();
  const drained = await strata('host', 'drain', 'fo-b');
  assert.equal(drained.code, 0, drained.stderr);
  const moved = await until('both replicas running on fo-a', async () => {
    const rs = await replicasOf();
    return rs.length === 2 && rs.every(r => r.host === a && r.state === 'running') ? rs : undefined;
  });
  await until('fo-b empty', async () => ((await runningOn(b)).length === 0 ? true : undefined));
  sampling = false;
  await sampler;
  // maxUnavailable 1 of 2 replicas: one at least served throughout.
  assert.ok(fewest >= 1, `${fewest} replicas running at the fewest`);
  assert.deepEqual(await runningOn(a), moved.map(r => r.id).sort());
  await until('no instance left on the drained host', async () => {
    const left = (await admin.get('/v1/instances?limit=100')).body.items as { host: string | null }[];
    return left.some(i => i.host === b) ? undefined : true;
  });
});
