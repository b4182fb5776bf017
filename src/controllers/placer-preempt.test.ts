// Preemption: an instance that fits on no host stops instances of lower
// priority to make room, waits until they have stopped, and is placed then;
// its victims go back to pending and run again when there is room.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { InstanceCreate } from '../kinds/schemas.ts';
import { newId } from '../lib/ids.ts';
import { createDeployment } from '../services/deployments.ts';
import { create as createGroup } from '../services/groups.ts';
import { InstanceService } from '../services/instances.ts';
import { insertProject, newProjectRow } from '../store/projects.ts';
import type { InstanceRow } from '../store/schema.ts';
import { deploymentsController } from './deployments.ts';
import { placer } from './placer.ts';
import {
  addHost,
  clusterAdmin as admin,
  containerSpec as spec,
  instancesByName as instances,
  openRig,
  type Rig,
} from './testing.ts';

const any = () => undefined;

/** Creates instances and runs them as their agent would; answers their ids by name. */
async function running(
  rig: Rig,
  svc: InstanceService,
  list: [string, Partial<InstanceCreate>][],
  projectId = rig.projectId,
): Promise<Record<string, string>> {
  const ids: Record<string, string> = {};
  for (const [name, more] of list) ids[name] = (await svc.create(projectId, spec(name, more), 'test')).id;
  await rig.runner.idle();
  for (const id of Object.values(ids)) {
    const row = (await rig.store.db.selectFrom('instances').selectAll().where('id', '=', id).executeTakeFirst())!;
    assert.equal(row.state, 'scheduled', `${row.name} placed`);
    await svc.report(row.host_id!, id, { state: 'running' }, 'agent');
  }
  await rig.runner.idle();
  return ids;
}

/** What an agent does with the instances it is told to stop: stops them, and reports it. */
async function agentStops(rig: Rig, svc: InstanceService, names: string[]): Promise<void> {
  const rows = await instances(rig);
  for (const n of names) {
    const r = rows.get(n)!;
    assert.equal(r.desired_state, 'stopped', `${n} asked to stop`);
    await svc.report(r.host_id!, r.id, { state: 'stopping' }, 'agent');
    await svc.report(r.host_id!, r.id, { state: 'stopped', exitCode: 143 }, 'agent');
  }
  await rig.runner.idle();
}

/** The placer alone, with one host `h` of `vcpus` vCPUs. */
async function oneHost(vcpus: number): Promise<{ rig: Rig; svc: InstanceService; h: string }> {
  const rig = await openRig(s => placer(s));
  return { rig, svc: new InstanceService(rig.store), h: await addHost(rig, 'h', { allocatable_vcpus: vcpus }) };
}

const view = (r: InstanceRow) => ({ state: r.state, desired: r.desired_state, message: r.message });
/** A preemptor waiting, pending, for `n` victims to stop. */
const waitsFor = (n: number) => ({
  state: 'pending',
  desired: 'running',
  message: `waiting for ${n} preempted ${n === 1 ? 'instance' : 'instances'} to stop`,
});
const preemptedEvents = (rig: Rig) =>
  rig.events.filter(e => e.type === 'instance.preempted').map(e => JSON.parse(e.data) as Record<string, unknown>);

test('the lowest priorities are preempted, the fewest; the preemptor is placed only once they stopped; they run again when room comes', async () => {
  const { rig, svc, h } = await oneHost(4);
  await running(rig, svc, [
    ['p5', { priority: 5 }],
    ['m3', { priority: -3 }],
    ['z0', { priority: 0 }],
    ['m1', { priority: -1 }],
  ]);
  await svc.create(rig.projectId, spec('vip', { priority: 10, resources: { vcpus: 2, memoryMib: 256 } }), 'test');
  await rig.runner.idle();
  let rows = await instances(rig);
  assert.deepEqual(view(rows.get('vip')!), waitsFor(2));
  for (const n of ['m3', 'm1'])
    assert.deepEqual(view(rows.get(n)!), {
      state: 'running',
      desired: 'stopped',
      message: 'preempted by instance vip (priority 10)',
    });
  for (const n of ['p5', 'z0']) assert.equal(rows.get(n)!.desired_state, 'running');
  const events = preemptedEvents(rig);
  assert.deepEqual(
    events.map(e => [e.instance, e.by, e.byPriority, e.sameProject, e.hostId]),
    [
      ['m3', 'vip', 10, true, h],
      ['m1', 'vip', 10, true, h],
    ],
  );
  const preempting = rig.events.filter(e => e.type === 'instance.preempting');
  assert.equal(preempting.length, 1);
  assert.deepEqual(JSON.parse(preempting[0]!.data), { hostId: h, victims: ['m3', 'm1'], otherProjects: 0 });
  // The agent is woken for each victim.
  assert.ok(rig.events.filter(e => e.type === 'instance.preempted').every(e => e.host === h));

  // Passes while they stop preempt nothing more, and place nothing.
  rig.clock.advance(30_000);
  await rig.runner.idle();
  assert.equal(preemptedEvents(rig).length, 2);
  await agentStops(rig, svc, ['m3']);
  rows = await instances(rig);
  assert.deepEqual(view(rows.get('m3')!), {
    state: 'pending',
    desired: 'running',
    message: 'waiting for capacity: 1 host: 1 lack vcpus; preempted by instance vip (priority 10)',
  });
  assert.equal(rows.get('m3')!.host_id, null);
  assert.equal(rows.get('vip')!.state, 'pending');
  assert.deepEqual(view(rows.get('vip')!), waitsFor(1));

  await agentStops(rig, svc, ['m1']);
  rows = await instances(rig);
  assert.equal(rows.get('vip')!.state, 'scheduled');
  assert.equal(rows.get('vip')!.host_id, h);
  assert.equal(rows.get('vip')!.message, '');
  assert.deepEqual(
    ['m3', 'm1'].map(n => rows.get(n)!.state),
    ['pending', 'pending'],
  );
  // The victims' state moves, as the API's events show them.
  const moves = rig.events
    .filter(e => e.type === 'instance.state' && e.resource_id === rows.get('m1')!.id)
    .map(e => JSON.parse(e.data) as { from: string; to: string });
  assert.deepEqual(
    moves.map(m => `${m.from}>${m.to}`),
    ['scheduled>running', 'running>stopping', 'stopping>stopped', 'stopped>pending'],
  );

  // Room comes back: the victims are placed again, and their mark is gone.
  await addHost(rig, 'more');
  await rig.runner.idle();
  rows = await instances(rig);
  for (const n of ['m3', 'm1']) {
    assert.equal(rows.get(n)!.state, 'scheduled');
    assert.equal(rows.get(n)!.message, '');
    assert.equal(rows.get(n)!.preempted_by, null);
  }
  await rig.close();
});

test('never an instance of equal or higher priority; never one just placed that its agent has not started', async () => {
  const { rig, svc } = await oneHost(3);
  await running(rig, svc, [
    ['same', { priority: 4 }],
    ['higher', { priority: 7 }],
  ]);
  await svc.create(rig.projectId, spec('fresh', { priority: -5 }), 'test');
  await rig.runner.idle();
  assert.equal((await instances(rig)).get('fresh')!.state, 'scheduled');
  await svc.create(rig.projectId, spec('p4', { priority: 4 }), 'test');
  await rig.runner.idle();
  const rows = await instances(rig);
  assert.equal(rows.get('p4')!.message, 'waiting for capacity: 1 host: 1 lack vcpus');
  assert.deepEqual(
    ['same', 'higher', 'fresh'].map(n => rows.get(n)!.desired_state),
    ['running', 'running', 'running'],
  );
  assert.equal(preemptedEvents(rig).length, 0);
  await rig.close();
});

test("never on a pool dedicated to another project; another project's preemptor is not named to the victim's", async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  const project = async (name: string) => {
    const id = newId('prj');
    await rig.store.write(({ trx }) => insertProject(trx, newProjectRow(id, name, new Date().toISOString())));
    return id;
  };
  const owner = await project('owner');
  const third = await project('third');
  // A host dedicated to `owner`, full of its low priorities; a shared host full of `third`'s.
  const theirs = await addHost(rig, 'theirs', { allocatable_vcpus: 1, pool: owner });
  await running(rig, svc, [['their-low', { priority: -10 }]], owner);
  const shared = await addHost(rig, 'shared', { allocatable_vcpus: 1 });
  await running(rig, svc, [['shared-low', { priority: -5 }]], third);

  // The default project reaches the shared host only, though its victim there is of higher priority.
  const vip = await svc.create(rig.projectId, spec('vip', { priority: 50 }), 'test');
  await rig.runner.idle();
  let events = preemptedEvents(rig);
  assert.deepEqual(events, [
    {
      instance: 'shared-low',
      by: null,
      byPriority: 50,
      sameProject: false,
      hostId: shared,
      message: 'preempted by an instance of another project (priority 50)',
    },
  ]);
  const victimEvent = rig.events.find(e => e.type === 'instance.preempted')!;
  assert.equal(victimEvent.project_id, third);
  assert.ok(!victimEvent.data.includes('vip'));
  assert.equal(
    (await instances(rig)).get('shared-low')!.message,
    'preempted by an instance of another project (priority 50)',
  );
  const preempting = rig.events.filter(e => e.type === 'instance.preempting');
  assert.deepEqual(
    preempting.map(e => [e.project_id, e.resource_id, JSON.parse(e.data)]),
    [[rig.projectId, vip.id, { hostId: shared, victims: [], otherProjects: 1 }]],
  );
  assert.equal((await instances(rig)).get('their-low')!.desired_state, 'running');

  // Its own project preempts there, and is named.
  await svc.create(owner, spec('their-vip', { priority: 1 }), 'test');
  await rig.runner.idle();
  events = preemptedEvents(rig);
  assert.deepEqual(
    events.slice(1).map(e => [e.instance, e.by, e.hostId]),
    [['their-low', 'their-vip', theirs]],
  );
  await rig.close();
});

test('hard anti-affinity: a member of the group in the way is preempted only where it is of lower priority', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  await createGroup(rig.store, admin, {
    project: 'default',
    name: 'apart',
    policy: 'anti-affinity',
    strength: 'hard',
    level: 'host',
  });
  await addHost(rig, 'a', { allocatable_vcpus: 4 });
  await running(rig, svc, [['a-member', { priority: 5, groups: ['apart'] }]]);
  const b = await addHost(rig, 'b', { allocatable_vcpus: 4 });
  // Lower priorities on a, but they are not what keeps the preemptor out.
  await running(rig, svc, [
    ['a-low', { priority: -9 }],
    ['b-member', { priority: 1, groups: ['apart'] }],
  ]);
  const rows0 = await instances(rig);
  assert.notEqual(rows0.get('a-member')!.host_id, rows0.get('b-member')!.host_id);
  await svc.create(rig.projectId, spec('vip', { priority: 3, groups: ['apart'] }), 'test');
  await rig.runner.idle();
  const rows = await instances(rig);
  assert.deepEqual(
    preemptedEvents(rig).map(e => [e.instance, e.hostId]),
    [['b-member', b]],
  );
  assert.equal(rows.get('a-low')!.desired_state, 'running');
  await agentStops(rig, svc, ['b-member']);
  const placed = (await instances(rig)).get('vip')!;
  assert.equal(placed.state, 'scheduled');
  assert.equal(placed.host_id, b);
  await rig.close();
});

test('room being made is held for the preemptor: no lower priority takes it, nor free room it needs', async () => {
  const { rig, svc, h } = await oneHost(3);
  await running(rig, svc, [
    ['v1', { priority: 0 }],
    ['v2', { priority: 0 }],
  ]);
  // One vCPU free; the preemptor needs three.
  await svc.create(rig.projectId, spec('vip', { priority: 9, resources: { vcpus: 3, memoryMib: 256 } }), 'test');
  await rig.runner.idle();
  assert.equal((await instances(rig)).get('vip')!.message, 'waiting for 2 preempted instances to stop');
  // A newcomer would fit in the free vCPU, then in the one v1 frees: it waits.
  await svc.create(rig.projectId, spec('newcomer', { priority: 1 }), 'test');
  await rig.runner.idle();
  await agentStops(rig, svc, ['v1']);
  await svc.create(rig.projectId, spec('late', { priority: 2 }), 'test');
  await rig.runner.idle();
  let rows = await instances(rig);
  assert.deepEqual(
    ['newcomer', 'late', 'v1', 'vip'].map(n => rows.get(n)!.state),
    ['pending', 'pending', 'pending', 'pending'],
  );
  await agentStops(rig, svc, ['v2']);
  rows = await instances(rig);
  assert.equal(rows.get('vip')!.state, 'scheduled');
  assert.equal(rows.get('vip')!.host_id, h);
  assert.deepEqual(
    ['newcomer', 'late', 'v1', 'v2'].map(n => rows.get(n)!.state),
    ['pending', 'pending', 'pending', 'pending'],
  );
  await rig.close();
});

test('a preemptor deleted while its victims stop leaves none stuck: they are placed again', async () => {
  const { rig, svc, h } = await oneHost(1);
  await running(rig, svc, [['low', { priority: -1 }]]);
  const vip = await svc.create(rig.projectId, spec('vip', { priority: 1 }), 'test');
  await rig.runner.idle();
  assert.equal((await instances(rig)).get('low')!.desired_state, 'stopped');
  await svc.delete(vip.id, 'test', any);
  await rig.runner.idle();
  await agentStops(rig, svc, ['low']);
  const low = (await instances(rig)).get('low')!;
  assert.equal(low.state, 'scheduled');
  assert.equal(low.host_id, h);
  assert.equal(low.desired_state, 'running');
  await rig.close();
});

test("a user's stop of a victim is the user's: it stays stopped on its host, and the preemptor looks for room again", async () => {
  const { rig, svc, h } = await oneHost(2);
  const ids = await running(rig, svc, [
    ['low', { priority: -1 }],
    ['lower', { priority: -2 }],
  ]);
  await svc.create(rig.projectId, spec('vip', { priority: 1 }), 'test');
  await rig.runner.idle();
  assert.equal((await instances(rig)).get('lower')!.preempted_by, (await instances(rig)).get('vip')!.id);
  await svc.setDesired(ids.lower!, 'stopped', 'test', any);
  await agentStops(rig, svc, ['lower']);
  let rows = await instances(rig);
  assert.equal(rows.get('lower')!.state, 'stopped');
  assert.equal(rows.get('lower')!.host_id, h, 'a stopped instance keeps its host');
  assert.equal(rows.get('lower')!.preempted_by, null);
  // The next pass (a resync) finds no preemption under way and preempts the next one.
  rig.clock.advance(30_000);
  await rig.runner.idle();
  rows = await instances(rig);
  assert.equal(rows.get('low')!.preempted_by, rows.get('vip')!.id);
  await agentStops(rig, svc, ['low']);
  rows = await instances(rig);
  assert.equal(rows.get('vip')!.state, 'scheduled');
  assert.equal(rows.get('low')!.state, 'pending');
  await rig.close();
});

test('a preempted replica waits in its slot, pending, without a failure counted or a second replica made', async () => {
  const rig = await openRig(
    s => placer(s),
    s => deploymentsController(s, { backoff: { baseMs: 2000, maxMs: 60_000, resetMs: 600_000 } }),
  );
  const svc = new InstanceService(rig.store);
  await addHost(rig, 'h', { allocatable_vcpus: 2 });
  const d = await createDeployment(rig.store, admin, {
    project: 'default',
    name: 'web',
    replicas: 2,
    priority: -5,
    template: { kind: 'container', image: 'docker.io/library/busybox:1.36', resources: { vcpus: 1, memoryMib: 64 } },
  });
  await rig.runner.idle();
  let reps = [...(await instances(rig)).values()].filter(r => r.deployment_id === d.id);
  for (const r of reps) await svc.report(r.host_id!, r.id, { state: 'running' }, 'agent');
  await rig.runner.idle();
  await svc.create(rig.projectId, spec('vip', { priority: 10 }), 'test');
  await rig.runner.idle();
  reps = [...(await instances(rig)).values()].filter(r => r.deployment_id === d.id);
  const victim = reps.find(r => r.desired_state === 'stopped')!;
  assert.ok(victim, 'one replica preempted');
  await agentStops(rig, svc, [victim.name]);
  rig.clock.advance(60_000);
  await rig.runner.idle();
  const rows = await instances(rig);
  assert.equal(rows.get('vip')!.state, 'scheduled');
  reps = [...rows.values()].filter(r => r.deployment_id === d.id);
  assert.equal(reps.length, 2, 'no second replica in the slot');
  const again = rows.get(victim.name)!;
  assert.equal(again.id, victim.id);
  assert.equal(again.slot, victim.slot);
  assert.equal(again.state, 'pending');
  assert.match(again.message, /^waiting for capacity: .*; preempted by instance vip \(priority 10\)$/);
  assert.equal(rig.events.filter(e => e.type === 'deployment.replica-failed').length, 0);
  const slots = await rig.store.db.selectFrom('deployment_slots').selectAll().execute();
  assert.deepEqual(
    slots.filter(s => s.failures > 0),
    [],
  );
  await rig.close();
});

test('an instance that does not wait for capacity still preempts, and waits for its victims; one that cannot preempt fails', async () => {
  const { rig, svc, h } = await oneHost(1);
  await running(rig, svc, [['low', { priority: 0 }]]);
  await svc.create(rig.projectId, spec('hasty', { priority: 5, waitForCapacity: false }), 'test');
  await svc.create(rig.projectId, spec('also-hasty', { priority: 5, waitForCapacity: false }), 'test');
  await rig.runner.idle();
  let rows = await instances(rig);
  assert.deepEqual(view(rows.get('hasty')!), waitsFor(1));
  // Nothing is left to preempt for the second: it fails, as it asked.
  assert.equal(rows.get('also-hasty')!.state, 'failed');
  assert.equal(rows.get('also-hasty')!.message, 'unplaced: 1 host: 1 lack vcpus');
  await agentStops(rig, svc, ['low']);
  rows = await instances(rig);
  assert.equal(rows.get('hasty')!.state, 'scheduled');
  assert.equal(rows.get('hasty')!.host_id, h);
  await rig.close();
});
