import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { newId } from '../lib/ids.ts';
import { InstanceService } from '../services/instances.ts';
import { placer } from './placer.ts';
import { addHost, containerSpec as spec, instancesByName as instances, openRig } from './testing.ts';

test('instances created through the service are placed, and their host is told by name', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  const host = await addHost(rig, 'h1');
  for (let i = 0; i < 3; i++) await svc.create(rig.projectId, spec(`web-${i}`), 'test');
  await rig.runner.idle();
  for (const row of (await instances(rig)).values()) {
    assert.equal(row.state, 'scheduled');
    assert.equal(row.host_id, host);
  }
  const scheduled = rig.events.filter(e => e.type === 'instance.scheduled');
  assert.equal(scheduled.length, 3);
  // The agent hub wakes the host the event names, not one found in its data.
  assert.ok(scheduled.every(e => 'host' in e && e.host === host));
  await rig.close();
});

test('a burst of concurrent creates never promises capacity twice', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  const a = await addHost(rig, 'a');
  const b = await addHost(rig, 'b');
  await Promise.all(Array.from({ length: 10 }, (_, i) => svc.create(rig.projectId, spec(`w-${i}`), 'test')));
  await rig.runner.idle();
  const rows = [...(await instances(rig)).values()];
  const on = (h: string) => rows.filter(r => r.host_id === h).length;
  // Two hosts of 4 vCPUs: 8 placed, 2 waiting with the reason counted per host.
  assert.equal(on(a), 4);
  assert.equal(on(b), 4);
  const waiting = rows.filter(r => r.state === 'pending');
  assert.equal(waiting.length, 2);
  for (const w of waiting) assert.equal(w.message, 'waiting for capacity: 2 hosts: 2 lack vcpus');
  await rig.close();
});

test('a hard anti-affinity refusal of an instance that does not wait is explained, on the instance and in an event', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  await addHost(rig, 'a');
  await addHost(rig, 'b');
  await rig.store.write(({ trx }) =>
    trx
      .insertInto('placement_groups')
      .values({
        id: newId('grp'),
        project_id: rig.projectId,
        name: 'apart',
        policy: 'anti-affinity',
        strength: 'hard',
        level: 'host',
        max_skew: 1,
        created_at: new Date().toISOString(),
      })
      .execute(),
  );
  for (const n of ['db-0', 'db-1', 'db-2']) {
    await svc.create(rig.projectId, spec(n, { groups: ['apart'], waitForCapacity: false }), 'test');
    await rig.runner.idle();
  }
  const rows = await instances(rig);
  assert.notEqual(rows.get('db-0')!.host_id, rows.get('db-1')!.host_id);
  assert.equal(rows.get('db-2')!.state, 'failed');
  assert.equal(rows.get('db-2')!.message, 'unplaced: 2 hosts: 2 anti-affinity host');
  const unplaced = rig.events.find(e => e.type === 'instance.unplaced');
  assert.deepEqual(JSON.parse(unplaced!.data), { reason: '2 hosts: 2 anti-affinity host', waiting: false });
  await rig.close();
});

test('with no host ready even an instance that does not wait for capacity waits, saying why, and is placed when a host comes', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  const down = await addHost(rig, 'old', { state: 'down' });
  await svc.create(rig.projectId, spec('patient', { waitForCapacity: false }), 'test');
  await rig.runner.idle();
  let row = (await instances(rig)).get('patient')!;
  assert.equal(row.state, 'pending');
  assert.equal(row.message, 'waiting for capacity: 1 host: 1 down');
  const fresh = await addHost(rig, 'new');
  await rig.runner.idle();
  row = (await instances(rig)).get('patient')!;
  assert.equal(row.state, 'scheduled');
  assert.equal(row.host_id, fresh);
  assert.notEqual(row.host_id, down);
  await rig.close();
});

test('a pending instance is placed at the next resync when no event says it could be', async () => {
  const rig = await openRig(s => placer(s, { resyncMs: 1_000 }));
  const svc = new InstanceService(rig.store);
  const host = await addHost(rig, 'h', { state: 'down' });
  await svc.create(rig.projectId, spec('quiet'), 'test');
  await rig.runner.idle();
  // The host becomes ready behind the controllers' back: no event.
  await rig.store.write(({ trx }) => trx.updateTable('hosts').set({ state: 'ready' }).where('id', '=', host).execute());
  await rig.runner.idle();
  assert.equal((await instances(rig)).get('quiet')!.state, 'pending');
  rig.clock.advance(1_000);
  await rig.runner.idle();
  assert.equal((await instances(rig)).get('quiet')!.host_id, host);
  await rig.close();
});

test('a reused snapshot is dropped by a change it did not make: a host drained, or changed without an event after a second', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  await addHost(rig, 'a');
  await addHost(rig, 'b');
  await svc.create(rig.projectId, spec('first'), 'test');
  await rig.runner.idle();
  // Packing would put the next instance beside the first; the snapshot the last
  // pass read says that host has room, and a drain says it takes no more.
  const a = (await instances(rig)).get('first')!.host_id!;
  await rig.store.write(async ({ trx, emit }) => {
    await trx.updateTable('hosts').set({ state: 'draining' }).where('id', '=', a).execute();
    emit({
      type: 'host.updated',
      projectId: null,
      resourceType: 'host',
      resourceId: a,
      actor: 'test',
      host: a,
      data: { fields: ['state'], state: 'draining' },
    });
  });
  await svc.create(rig.projectId, spec('second'), 'test');
  await rig.runner.idle();
  const b = (await instances(rig)).get('second')!.host_id!;
  assert.notEqual(b, a);
  // A heartbeat changes b's fingerprint without an event: within a second the
  // last read may stand, after it a pass reads again.
  await rig.store.write(({ trx }) =>
    trx.updateTable('hosts').set({ allocatable_vcpus: 1 }).where('id', '=', b).execute(),
  );
  rig.clock.advance(1_000);
  await svc.create(rig.projectId, spec('third', { waitForCapacity: false }), 'test');
  await rig.runner.idle();
  const third = (await instances(rig)).get('third')!;
  assert.equal(third.state, 'failed');
  assert.equal(third.message, 'unplaced: 2 hosts: 1 draining, 1 lack vcpus');
  await rig.close();
});

test('an instance a reused snapshot cannot place is tried on a fresh read before it fails', async () => {
  const rig = await openRig(s => placer(s));
  const svc = new InstanceService(rig.store);
  const a = await addHost(rig, 'a');
  for (let i = 0; i < 4; i++) await svc.create(rig.projectId, spec(`fill-${i}`), 'test');
  await rig.runner.idle();
  // Capacity comes back without an event the placer wakes on: the snapshot it
  // holds still counts the freed vCPUs as taken.
  await rig.store.write(({ trx }) =>
    trx.updateTable('hosts').set({ allocatable_vcpus: 8 }).where('id', '=', a).execute(),
  );
  await svc.create(rig.projectId, spec('late'), 'test');
  await rig.runner.idle();
  const late = (await instances(rig)).get('late')!;
  assert.equal(late.state, 'scheduled');
  assert.equal(late.host_id, a);
  await rig.close();
});
