// Preemption with a real agent on Podman: a host whose memory is taken by
// low-priority replicas of a deployment; a high-priority instance arrives
// and fits nowhere, so one replica is stopped (its container really stops)
// and the high-priority one runs in its room. The preempted replica waits in
// pending in its slot, saying why, and the event says who displaced whom;
// once the high-priority one is deleted, the replica runs again.
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import Docker from 'dockerode';
import { INSTANCE_LABEL } from '../src/drivers/container/driver.ts';
import { PODMAN_SOCKET, startContainerFixture, TEST_IMAGE, until, type ContainerFixture } from './helpers.ts';

const docker = new Docker({ socketPath: PODMAN_SOCKET });
let fx: ContainerFixture;

before(async () => {
  fx = await startContainerFixture('preempt-node');
});
after(async () => {
  await fx.close();
});

type Replica = { id: string; name: string; state: string };

const instance = async (id: string) => (await fx.admin.get(`/v1/instances/${id}`)).body;
const replicasOf = async (deploymentId: string): Promise<Replica[]> =>
  (await fx.admin.get(`/v1/deployments/${deploymentId}`)).body.instances as Replica[];
const runningContainers = async (id: string) =>
  (await docker.listContainers({ all: true, filters: { label: [`${INSTANCE_LABEL}=${id}`] } })).filter(
    c => c.State === 'running',
  );

test('a high-priority instance preempts a low-priority replica, which waits in its slot and runs again when room comes back', async () => {
  const replicaMib = 128;
  const free = (await fx.admin.get(`/v1/hosts/${fx.hostId}`)).body.allocatable.memoryMib as number;
  // A stopped instance holds its room on its host (and at top priority, none preempts it): all of the host's memory but two replicas'.
  const hog = await fx.run({
    name: 'hog',
    desiredState: 'stopped',
    priority: 1000,
    resources: { vcpus: 1, memoryMib: free - 2 * replicaMib },
  });
  await until('hog placed', async () => ((await instance(hog)).host === fx.hostId ? true : undefined));

  const created = await fx.admin.post('/v1/deployments', {
    project: 'default',
    name: 'batch',
    replicas: 2,
    priority: -10,
    template: {
      kind: 'container',
      image: TEST_IMAGE,
      command: ['sleep', '3600'],
      stopGraceSeconds: 1,
      resources: { vcpus: 1, memoryMib: replicaMib },
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const deploymentId = created.body.id as string;
  const before = await until('both replicas running', async () => {
    const rs = await replicasOf(deploymentId);
    return rs.length === 2 && rs.every(r => r.state === 'running') ? rs : undefined;
  });
  for (const r of before) assert.equal((await runningContainers(r.id)).length, 1, `${r.name} runs in a container`);

  const vip = await fx.run({
    name: 'vip',
    priority: 100,
    command: ['sleep', '3600'],
    stopGraceSeconds: 1,
    resources: { vcpus: 1, memoryMib: replicaMib },
  });
  const placed = await fx.waitFor(vip, 'running', 60_000);
  assert.equal(placed.host, fx.hostId);

  // One replica was preempted: stopped for real, back in pending in its slot, saying by whom.
  const rs = await replicasOf(deploymentId);
  assert.equal(rs.length, 2, 'no second replica made for the slot');
  assert.deepEqual(rs.map(r => r.id).sort(), before.map(r => r.id).sort(), 'the same replicas');
  const victim = rs.find(r => r.state !== 'running');
  assert.ok(victim, JSON.stringify(rs));
  const survivor = rs.find(r => r !== victim)!;
  assert.equal(survivor.state, 'running');
  const waiting = await instance(victim.id);
  assert.equal(waiting.state, 'pending');
  assert.equal(waiting.host, null);
  assert.equal(waiting.desiredState, 'running');
  assert.match(
    waiting.message,
    /^waiting for capacity: 1 host: 1 lack memory; preempted by instance vip \(priority 100\)$/,
  );
  assert.equal((await runningContainers(victim.id)).length, 0, "the victim's container no longer runs");
  assert.equal((await runningContainers(survivor.id)).length, 1);

  const events = (await fx.admin.get(`/v1/events?resource=${victim.id}`)).body.items as { type: string; data: any }[];
  const preempted = events.filter(e => e.type === 'instance.preempted');
  assert.equal(preempted.length, 1);
  assert.deepEqual(preempted[0]!.data, {
    instance: victim.name,
    by: 'vip',
    byPriority: 100,
    sameProject: true,
    hostId: fx.hostId,
    message: 'preempted by instance vip (priority 100)',
  });
  const moves = events.filter(e => e.type === 'instance.state').map(e => `${e.data.from}>${e.data.to}`);
  assert.deepEqual(moves.slice(-3), ['running>stopping', 'stopping>stopped', 'stopped>pending']);
  const vipEvents = (await fx.admin.get(`/v1/events?resource=${vip}`)).body.items as { type: string; data: any }[];
  assert.deepEqual(
    vipEvents.filter(e => e.type === 'instance.preempting').map(e => e.data),
    [{ hostId: fx.hostId, victims: [victim.name], otherProjects: 0 }],
  );
  // The deployment counts no failure.
  const d = (await fx.admin.get(`/v1/deployments/${deploymentId}`)).body;
  const failures = (await fx.admin.get(`/v1/events?resource=${deploymentId}`)).body.items.filter(
    (e: { type: string }) => e.type === 'deployment.replica-failed',
  );
  assert.deepEqual(failures, []);
  assert.equal(d.status?.replicas ?? d.replicas, 2);

  // Room comes back: the same replica runs again, in a new container.
  assert.equal((await fx.admin.delete(`/v1/instances/${vip}`)).status < 300, true);
  const again = await fx.waitFor(victim.id, 'running', 60_000);
  assert.equal(again.host, fx.hostId);
  assert.equal(again.message, '');
  await until('its container runs', async () => ((await runningContainers(victim.id)).length === 1 ? true : undefined));
  const after = await replicasOf(deploymentId);
  assert.deepEqual(after.map(r => r.id).sort(), before.map(r => r.id).sort());
  assert.ok(after.every(r => r.state === 'running'));
});
