// Waiting for capacity: an instance no host can take stays pending, saying
// why, and is placed when something frees room, in queue order (priority,
// then first come), without one that does not fit blocking one that does.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { Fingerprint } from '../model/agent-protocol.ts';
import { heartbeat } from '../services/agents.ts';
import { finalizeDelete, InstanceService } from '../services/instances.ts';
import { explain } from '../services/placement.ts';
import type { HostTable } from '../store/schema.ts';
import { placer } from './placer.ts';
import { addHost, containerSpec as spec, instancesByName as instances, openRig, type Rig } from './testing.ts';

const any = () => undefined;

/** Changes a host as an operator would, with the event that says so. */
async function changeHost(rig: Rig, id: string, set: Partial<HostTable>): Promise<void> {
  await rig.store.write(async ({ trx, emit }) => {
    await trx.updateTable('hosts').set(set).where('id', '=', id).execute();
    emit({
      type: 'host.updated',
      projectId: null,
      resourceType: 'host',
      resourceId: id,
      actor: 'test',
      host: id,
      data: { fields: Object.keys(set), state: set.state },
    });
  });
}

/** The data of every `instance.unplaced` event so far. */
const unplacedEvents = (rig: Rig) =>
  rig.events.filter(e => e.type === 'instance.unplaced').map(e => JSON.parse(e.data) as unknown);

/** A host of 4 vCPUs filled by four 1-vCPU instances; answers the host and the fillers' ids. */
async function fullHost(rig: Rig, svc: InstanceService): Promise<{ host: string; fill: string[] }> {
  const host = await addHost(rig, 'h');
  const fill: string[] = [];
  for (let i = 0; i < 4; i++) fill.push((await svc.create(rig.projectId, spec(`fill-${i}`), 'test')).id);
  await rig.runner.idle();
  for (const id of fill)
    assert.equal(
      (await rig.store.db.selectFrom('instances').select('host_id').where('id', '=', id).executeTakeFirst())?.host_id,
      host,
    );
  return { host, fill };
}

test('an instance no host can take waits with the counted reasons, said once, and is placed when a host joins', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  await addHost(rig, 'small', { allocatable_memory_mib: 1024 });
  await svc.create(rig.projectId, spec('big', { resources: { vcpus: 1, memoryMib: 2048 } }), 'test');
  await rig.runner.idle();
  let row = (await instances(rig)).get('big')!;
  assert.equal(row.state, 'pending');
  assert.equal(row.wait_for_capacity, 1, 'waiting is the default');
  assert.equal(row.message, 'waiting for capacity: 1 host: 1 lack memory');
  assert.deepEqual(unplacedEvents(rig), [{ reason: '1 host: 1 lack memory', waiting: true }]);
  const why = await explain(rig.store, row);
  assert.deepEqual([why.state, why.priority, why.waiting], ['pending', 0, '1 host: 1 lack memory']);
  assert.equal(why.refusals, '1 host: 1 lack memory');

  const roomy = await addHost(rig, 'roomy');
  await rig.runner.idle();
  row = (await instances(rig)).get('big')!;
  assert.equal(row.state, 'scheduled');
  assert.equal(row.host_id, roomy);
  assert.equal(row.message, '');
  assert.equal((await explain(rig.store, row)).waiting, null);
  assert.equal(unplacedEvents(rig).length, 1);
  await rig.close();
});

test('a deleted instance gives its room to a waiting one; a stopped one keeps it', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  const { host, fill } = await fullHost(rig, svc);
  await svc.create(rig.projectId, spec('next'), 'test');
  await rig.runner.idle();
  assert.equal((await instances(rig)).get('next')!.message, 'waiting for capacity: 1 host: 1 lack vcpus');
  // A stopped instance stays on its host, holding what it asked for there.
  await svc.setDesired(fill[0]!, 'stopped', 'test', any);
  rig.clock.advance(30_000);
  await rig.runner.idle();
  assert.equal((await instances(rig)).get('next')!.state, 'pending');
  await svc.delete(fill[1]!, 'test', any, true);
  await rig.runner.idle();
  const next = (await instances(rig)).get('next')!;
  assert.equal(next.state, 'scheduled');
  assert.equal(next.host_id, host);
  await rig.close();
});

test('room for one goes to the higher priority, then to the older of equal priorities', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  const { fill } = await fullHost(rig, svc);
  await svc.create(rig.projectId, spec('low-old'), 'test');
  await svc.create(rig.projectId, spec('high', { priority: 5 }), 'test');
  await svc.create(rig.projectId, spec('low-new'), 'test');
  await rig.runner.idle();
  const states = async () =>
    Object.fromEntries(
      [...(await instances(rig))].filter(([n]) => !n.startsWith('fill')).map(([n, r]) => [n, r.state] as const),
    );
  assert.deepEqual(await states(), { high: 'pending', 'low-new': 'pending', 'low-old': 'pending' });
  await svc.delete(fill[0]!, 'test', any, true);
  await rig.runner.idle();
  assert.deepEqual(await states(), { high: 'scheduled', 'low-new': 'pending', 'low-old': 'pending' });
  await svc.delete(fill[1]!, 'test', any, true);
  await rig.runner.idle();
  assert.deepEqual(await states(), { high: 'scheduled', 'low-new': 'pending', 'low-old': 'scheduled' });
  await svc.delete(fill[2]!, 'test', any, true);
  await rig.runner.idle();
  assert.deepEqual(await states(), { high: 'scheduled', 'low-new': 'scheduled', 'low-old': 'scheduled' });
  await rig.close();
});

test('a higher priority that does not fit blocks no lower one that does, and gets the room once there is enough', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  const { host, fill } = await fullHost(rig, svc);
  await svc.create(rig.projectId, spec('wide', { priority: 10, resources: { vcpus: 2, memoryMib: 256 } }), 'test');
  await svc.create(rig.projectId, spec('narrow', { priority: -10 }), 'test');
  await rig.runner.idle();
  // One vCPU frees: too little for the wide one, enough for the narrow one.
  await svc.delete(fill[0]!, 'test', any, true);
  await rig.runner.idle();
  let rows = await instances(rig);
  assert.equal(rows.get('wide')!.state, 'pending');
  assert.equal(rows.get('narrow')!.state, 'scheduled');
  assert.equal(rows.get('narrow')!.host_id, host);
  // A newcomer waits too; two vCPUs free at once: enough for the wide one,
  // first in the queue, or for the newcomer, not for both.
  await svc.create(rig.projectId, spec('newcomer', { priority: 0 }), 'test');
  await rig.runner.idle();
  const freed = await rig.store.db
    .selectFrom('instances')
    .selectAll()
    .where('id', 'in', [fill[1]!, fill[2]!])
    .execute();
  await rig.store.write(async ctx => {
    for (const r of freed) await finalizeDelete(ctx, r, 'test', true);
  });
  await rig.runner.idle();
  rows = await instances(rig);
  assert.equal(rows.get('wide')!.state, 'scheduled');
  assert.equal(rows.get('newcomer')!.state, 'pending');
  await rig.close();
});

test('waitForCapacity false fails at once, and a start tries again', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  await addHost(rig, 'small', { allocatable_memory_mib: 1024 });
  const hasty = await svc.create(
    rig.projectId,
    spec('hasty', { waitForCapacity: false, resources: { vcpus: 1, memoryMib: 2048 } }),
    'test',
  );
  await rig.runner.idle();
  let row = (await instances(rig)).get('hasty')!;
  assert.equal(row.state, 'failed');
  assert.equal(row.message, 'unplaced: 1 host: 1 lack memory');
  assert.deepEqual(unplacedEvents(rig), [{ reason: '1 host: 1 lack memory', waiting: false }]);
  // Started again with nothing changed: it fails again, rather than waiting.
  await svc.setDesired(hasty.id, 'running', 'test', any);
  await rig.runner.idle();
  assert.equal((await instances(rig)).get('hasty')!.state, 'failed');
  assert.equal(unplacedEvents(rig).length, 2);
  // A host that could take it now does not revive it; a start does.
  const roomy = await addHost(rig, 'roomy');
  await rig.runner.idle();
  assert.equal((await instances(rig)).get('hasty')!.state, 'failed');
  await svc.setDesired(hasty.id, 'running', 'test', any);
  await rig.runner.idle();
  row = (await instances(rig)).get('hasty')!;
  assert.equal(row.state, 'scheduled');
  assert.equal(row.host_id, roomy);
  await rig.close();
});

test('the message follows the reasons as they change; passes that change nothing write nothing', async () => {
  const rig = await openRig(s => placer(s, { resyncMs: 1_000 }));
  const svc = new InstanceService(rig.store);
  const a1 = await addHost(rig, 'a1', { zone: 'a', allocatable_memory_mib: 1024 });
  await addHost(rig, 'a2', { zone: 'a', allocatable_memory_mib: 1024 });
  const b1 = await addHost(rig, 'b1', { zone: 'b' });
  const zoneA = [{ key: 'topology.zone', op: '==' as const, value: 'a' }];
  await svc.create(
    rig.projectId,
    spec('picky', { constraints: zoneA, resources: { vcpus: 1, memoryMib: 2048 } }),
    'test',
  );
  await rig.runner.idle();
  let row = (await instances(rig)).get('picky')!;
  assert.equal(row.message, 'waiting for capacity: 3 hosts: 2 lack memory, 1 constraint topology.zone == a');
  await changeHost(rig, a1, { state: 'draining' });
  await rig.runner.idle();
  row = (await instances(rig)).get('picky')!;
  assert.equal(row.state, 'pending');
  assert.equal(
    row.message,
    'waiting for capacity: 3 hosts: 1 constraint topology.zone == a, 1 draining, 1 lack memory',
  );
  assert.equal(unplacedEvents(rig).length, 1, 'one event when it started waiting, none when the reasons changed');

  // Many passes that change nothing: host events that leave it unplaceable, resyncs.
  const seen = rig.events.length;
  const before = row.updated_at;
  for (let i = 0; i < 25; i++) {
    await changeHost(rig, b1, { labels: JSON.stringify({ pass: String(i) }) });
    rig.clock.advance(1_000);
    await rig.runner.idle();
  }
  row = (await instances(rig)).get('picky')!;
  assert.equal(row.state, 'pending');
  assert.equal(row.updated_at, before, 'no write');
  const since = rig.events.slice(seen);
  assert.equal(since.length, 25);
  assert.ok(since.every(e => e.type === 'host.updated'));
  await rig.close();
});

test('room freed while new instances come goes to the waiting ones first, even before its event wakes the placer', async () => {
  // The placer alone, its passes given by hand: the deletion's event is in the
  // log, but the pass is woken by a create only.
  const rig = await openRig();
  const svc = new InstanceService(rig.store);
  const p = placer(rig.store);
  const createdEvent = (id: string) => rig.events.find(e => e.type === 'instance.created' && e.resource_id === id)!;
  const host = await addHost(rig, 'h');
  const fill: string[] = [];
  for (let i = 0; i < 4; i++) fill.push((await svc.create(rig.projectId, spec(`fill-${i}`), 'test')).id);
  await p.reconcile({ events: [], resync: true, now: rig.clock.now(), startedAt: rig.clock.now() });
  const high = await svc.create(rig.projectId, spec('high', { priority: 1 }), 'test');
  await p.reconcile({
    events: [createdEvent(high.id)],
    resync: false,
    now: rig.clock.now(),
    startedAt: rig.clock.now(),
  });
  assert.equal((await instances(rig)).get('high')!.state, 'pending');
  await svc.delete(fill[0]!, 'test', any, true);
  const late = await svc.create(rig.projectId, spec('late'), 'test');
  await p.reconcile({
    events: [createdEvent(late.id)],
    resync: false,
    now: rig.clock.now(),
    startedAt: rig.clock.now(),
  });
  const rows = await instances(rig);
  assert.equal(rows.get('high')!.host_id, host);
  assert.equal(rows.get('late')!.state, 'pending');
  assert.equal(rows.get('late')!.message, 'waiting for capacity: 1 host: 1 lack vcpus');
  await rig.close();
});

test('a burst larger than a batch is placed in queue order across its batches', async () => {
  const rig = await openRig();
  const svc = new InstanceService(rig.store);
  const p = placer(rig.store);
  await addHost(rig, 'two-slots', { allocatable_vcpus: 2 });
  // A first pass places one: from then on only creates happen, so passes place what they are named.
  await svc.create(rig.projectId, spec('first'), 'test');
  await p.reconcile({ events: [], resync: true, now: rig.clock.now(), startedAt: rig.clock.now() });
  const seen = rig.events.length;
  for (let i = 0; i < 600; i++)
    await svc.create(rig.projectId, spec(`b-${String(i).padStart(3, '0')}`, i === 599 ? { priority: 1 } : {}), 'test');
  const created = rig.events.slice(seen).filter(e => e.type === 'instance.created');
  await p.reconcile({ events: created, resync: false, now: rig.clock.now(), startedAt: rig.clock.now() });
  const placed = [...(await instances(rig)).values()].filter(r => r.state === 'scheduled').map(r => r.name);
  assert.deepEqual(placed, ['b-599', 'first']);
  await rig.close();
});

test('a heartbeat that reports more room places what waits for it, at once', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  const h = await addHost(rig, 'growing', { allocatable_memory_mib: 1024 });
  await svc.create(rig.projectId, spec('big', { resources: { vcpus: 1, memoryMib: 2048 } }), 'test');
  await rig.runner.idle();
  assert.equal((await instances(rig)).get('big')!.state, 'pending');
  const size = { vcpus: 8, memoryMib: 8192, diskGib: 100 };
  const grown: Fingerprint = { capacity: size, allocatable: size, drivers: ['container'] };
  const same = await heartbeat(rig.store, h, grown);
  assert.equal(same.state, 'ready');
  const said = rig.events.filter(e => e.type === 'host.updated').map(e => JSON.parse(e.data).fields as string[]);
  assert.ok(said.at(-1)?.includes('allocatable'), `the heartbeat said what changed: ${JSON.stringify(said)}`);
  // No resync: the clock stands still, the event alone wakes the placer.
  await rig.runner.idle();
  const row = (await instances(rig)).get('big')!;
  assert.equal(row.state, 'scheduled');
  assert.equal(row.host_id, h);
  // The same fingerprint again says nothing.
  const before = rig.events.length;
  await heartbeat(rig.store, h, grown);
  assert.equal(rig.events.length, before);
  await rig.close();
});
