import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { DeploymentSpec } from '../kinds/schemas.ts';
import type { ApiError } from '../lib/errors.ts';
import {
  createDeployment,
  promoteDeployment,
  removeDeployment,
  replaceDeployment,
  rollbackDeployment,
  scaleDeployment,
  setPaused,
} from '../services/deployments.ts';
import { InstanceService } from '../services/instances.ts';
import type { InstanceRow } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { type DeploymentsControllerOptions, deploymentsController } from './deployments.ts';
import { heartbeat } from '../services/agents.ts';
import { assignedTo } from '../store/instances.ts';
import { update as updateHost } from '../services/hosts.ts';
import { liveness } from './liveness.ts';
import { placer } from './placer.ts';
import { Runner } from './runner.ts';
import { addHost, clusterAdmin as admin, openRig, type Rig } from './testing.ts';

const spec = (replicas: number, more: Partial<DeploymentSpec> = {}): DeploymentSpec => ({
  replicas,
  template: { kind: 'container', image: 'docker.io/library/busybox:1.36', resources: { vcpus: 1, memoryMib: 64 } },
  ...more,
});

const opts: DeploymentsControllerOptions = { backoff: { baseMs: 2000, maxMs: 60_000, resetMs: 600_000 } };

async function rigWithHost(o: DeploymentsControllerOptions = opts): Promise<Rig> {
  const rig = await openRig(
    s => placer(s),
    s => deploymentsController(s, o),
  );
  await addHost(rig, 'h1', { allocatable_vcpus: 64, allocatable_memory_mib: 65_536 });
  return rig;
}

const replicas = async (rig: Rig): Promise<InstanceRow[]> =>
  rig.store.db.selectFrom('instances').selectAll().orderBy('slot').orderBy('name').execute();

const deployment = (rig: Rig, id: string) =>
  rig.store.db.selectFrom('deployments').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

/**
 * What the hosts' agents would do, until nothing is left to do: start what is
 * scheduled on them, tear down what is being deleted.
 */
async function agents(rig: Rig): Promise<void> {
  const svc = new InstanceService(rig.store);
  for (;;) {
    await rig.runner.idle();
    const todo = (await replicas(rig)).filter(r => r.state === 'scheduled' || r.state === 'deleting');
    if (todo.length === 0) return;
    for (const r of todo)
      await svc.report(r.host_id!, r.id, { state: r.state === 'scheduled' ? 'running' : 'deleted' }, 'agent:h1');
  }
}

const live = (rows: InstanceRow[]) => rows.filter(r => r.desired_state !== 'deleted');

test('a deployment gets its replicas, one per slot, named by deployment, slot and revision', async () => {
  const rig = await rigWithHost();
  const d = await createDeployment(rig.store, admin, { project: 'default', name: 'web', ...spec(3) });
  await agents(rig);
  const rows = await replicas(rig);
  assert.deepEqual(
    rows.map(r => [r.slot, r.revision, r.state]),
    [
      [0, 1, 'running'],
      [1, 1, 'running'],
      [2, 1, 'running'],
    ],
  );
  for (const r of rows) assert.match(r.name, new RegExp(`^web-${r.slot}-[0-9a-f]{6}$`));
  const status = await deployment(rig, d.id);
  assert.equal(status.phase, 'complete');
  assert.equal(status.status_available, 3);
  assert.equal(status.observed_generation, 1);
  await rig.close();
});

test('scaling down deletes the highest slots first; scaling up fills the missing ones', async () => {
  const rig = await rigWithHost();
  const d = await createDeployment(rig.store, admin, { project: 'default', name: 'web', ...spec(4) });
  await agents(rig);
  const before = rig.events.length;
  const slotOf = new Map((await replicas(rig)).map(r => [r.id, r.slot]));
  await scaleDeployment(rig.store, admin, d.id, 1);
  await agents(rig);
  const deleting = rig.events.slice(before).filter(e => e.type === 'instance.deleting');
  assert.deepEqual(
    deleting.map(e => slotOf.get(e.resource_id)),
    [3, 2, 1],
  );
  assert.deepEqual(
    live(await replicas(rig)).map(r => r.slot),
    [0],
  );
  await scaleDeployment(rig.store, admin, d.id, 3);
  await agents(rig);
  assert.deepEqual(
    live(await replicas(rig)).map(r => [r.slot, r.state]),
    [
      [0, 'running'],
      [1, 'running'],
      [2, 'running'],
    ],
  );
  assert.equal((await deployment(rig, d.id)).phase, 'complete');
  await rig.close();
});

test('a failed replica is counted, kept through its backoff, then replaced; the backoff doubles and survives a restart', async () => {
  const rig = await rigWithHost();
  const svc = new InstanceService(rig.store);
  const d = await createDeployment(rig.store, admin, { project: 'default', name: 'web', ...spec(2) });
  await agents(rig);
  const fail = async (slot: number) => {
    const r = live(await replicas(rig)).find(x => x.slot === slot && x.state === 'running')!;
    await svc.report(r.host_id!, r.id, { state: 'failed', exitCode: 137, message: 'killed' }, 'agent:h1');
    await agents(rig);
    return r;
  };
  const first = await fail(1);
  let failed = rig.events.filter(e => e.type === 'deployment.replica-failed');
  assert.equal(failed.length, 1);
  assert.deepEqual(JSON.parse(failed[0]!.data), {
    slot: 1,
    instance: first.name,
    reason: 'killed',
    failures: 1,
    retryInSeconds: 2,
  });
  // The failed replica stays, readable, while its slot waits.
  let st = await deployment(rig, d.id);
  assert.equal(st.phase, 'degraded');
  assert.match(st.message, /^slot 1 waits 2 s after 1 failure \(killed\)$/);
  assert.equal((await replicas(rig)).find(r => r.id === first.id)?.state, 'failed');
  rig.clock.advance(1000);
  await agents(rig);
  assert.equal((await replicas(rig)).find(r => r.id === first.id)?.state, 'failed');
  rig.clock.advance(1000);
  await agents(rig);
  assert.equal(
    (await replicas(rig)).find(r => r.id === first.id),
    undefined,
    'the failed replica is gone',
  );
  const slot1 = live(await replicas(rig)).filter(r => r.slot === 1);
  assert.equal(slot1.length, 1);
  assert.equal(slot1[0]!.state, 'running');
  assert.notEqual(slot1[0]!.name, first.name);
  const replaced = rig.events.filter(e => e.type === 'deployment.replica-replaced');
  assert.deepEqual(JSON.parse(replaced[0]!.data), {
    slot: 1,
    instance: first.name,
    replacement: slot1[0]!.name,
    reason: 'failed',
  });
  st = await deployment(rig, d.id);
  assert.equal(st.replacements, 1);
  assert.equal(st.phase, 'complete');

  // A second failure in a row waits twice as long, and a new controller (a restarted server) keeps the wait.
  await fail(1);
  failed = rig.events.filter(e => e.type === 'deployment.replica-failed');
  assert.equal(JSON.parse(failed[1]!.data).retryInSeconds, 4);
  await rig.runner.stop();
  const runner = new Runner({
    subscribe: l => rig.store.onEvent(l),
    clock: rig.clock,
    log: { error: obj => assert.fail(JSON.stringify(obj)) },
  }).add(deploymentsController(rig.store, opts));
  runner.start();
  await runner.idle();
  rig.clock.advance(3000);
  await runner.idle();
  assert.equal(live(await replicas(rig)).filter(r => r.slot === 1 && r.state === 'failed').length, 1);
  rig.clock.advance(1000);
  await runner.idle();
  const now = live(await replicas(rig)).filter(r => r.slot === 1);
  assert.deepEqual(
    now.map(r => r.state),
    ['pending'],
    'replaced once its 4 s are over',
  );
  await runner.stop();
  await rig.store.close();
});

test('a replica its restart policy restarts is left to its agent', async () => {
  const rig = await rigWithHost();
  const svc = new InstanceService(rig.store);
  const template = { ...spec(1).template, restartPolicy: { policy: 'always' as const } };
  await createDeployment(rig.store, admin, { project: 'default', name: 'web', ...spec(1, { template }) });
  await agents(rig);
  const r = (await replicas(rig))[0]!;
  await svc.report(r.host_id!, r.id, { state: 'failed', exitCode: 1, message: 'restarting in 1 s' }, 'agent:h1');
  await agents(rig);
  assert.equal(rig.events.filter(e => e.type === 'deployment.replica-failed').length, 0);
  assert.deepEqual(
    (await replicas(rig)).map(x => x.id),
    [r.id],
  );
  await rig.close();
});

test('the same spec again changes nothing: no write, no event, no new revision', async () => {
  const rig = await rigWithHost();
  const d = await createDeployment(rig.store, admin, { project: 'default', name: 'web', ...spec(2) });
  await agents(rig);
  const before = rig.events.length;
  const same = await replaceDeployment(rig.store, admin, d.id, spec(2));
  assert.deepEqual(same.changed, []);
  assert.equal(same.row.generation, 1);
  await agents(rig);
  assert.equal(rig.events.length, before);
  const labelled = await replaceDeployment(rig.store, admin, d.id, spec(2, { labels: { tier: 'web' } }));
  assert.deepEqual(labelled.changed, ['labels']);
  assert.equal(labelled.row.revision, 1, 'labels of the deployment make no revision');
  assert.deepEqual(
    rig.events.slice(before).map(e => e.type),
    ['deployment.updated'],
  );
  await rig.close();
});

test('a changed template rolls out slot by slot within maxSurge and maxUnavailable', async () => {
  const rig = await rigWithHost();
  const svc = new InstanceService(rig.store);
  const strategy = { maxSurge: 1, maxUnavailable: 0 };
  const d = await createDeployment(rig.store, admin, { project: 'default', name: 'web', ...spec(4, { strategy }) });
  await agents(rig);
  const changed = spec(4, { strategy });
  changed.template = { ...changed.template, image: 'docker.io/library/busybox:1.37' };
  const applied = await replaceDeployment(rig.store, admin, d.id, changed);
  assert.deepEqual(applied.changed, ['template']);
  assert.equal(applied.row.revision, 2);
  // One step at a time: start what is placed, then look.
  for (let step = 0; step < 40; step++) {
    await rig.runner.idle();
    const rows = live(await replicas(rig));
    assert.ok(rows.length <= 5, `at most replicas + maxSurge live: ${rows.length}`);
    assert.ok(rows.filter(r => r.state === 'running').length >= 4, 'never fewer than 4 running');
    for (const slot of new Set(rows.map(r => r.slot))) {
      const revs = rows.filter(r => r.slot === slot).map(r => r.revision);
      assert.equal(new Set(revs).size, revs.length, `slot ${slot} holds one replica of each revision`);
    }
    const next = (await replicas(rig)).find(r => r.state === 'scheduled' || r.state === 'deleting');
    if (!next) break;
    await svc.report(next.host_id!, next.id, { state: next.state === 'scheduled' ? 'running' : 'deleted' }, 'a');
  }
  const rows = live(await replicas(rig));
  assert.deepEqual(
    rows.map(r => [r.slot, r.revision, r.state]),
    [0, 1, 2, 3].map(s => [s, 2, 'running']),
  );
  const st = await deployment(rig, d.id);
  assert.equal(st.phase, 'complete');
  assert.equal(st.status_updated, 4);
  await rig.close();
});

test('replicas beyond the quota are refused when given, and nothing changes', async () => {
  const rig = await rigWithHost();
  await rig.store.write(({ trx }) =>
    trx.updateTable('projects').set({ quota_vcpus: 3 }).where('id', '=', rig.projectId).execute(),
  );
  await assert.rejects(
    createDeployment(rig.store, admin, { project: 'default', name: 'big', ...spec(4) }),
    (err: ApiError) =>
      err.code === 'quota_exceeded' &&
      err.message ===
        'project default quota cannot hold 4 replicas of 1 vCPU, 64 MiB memory and 0 GiB disk: vcpus 0+4 > 3',
  );
  const d = await createDeployment(rig.store, admin, { project: 'default', name: 'web', ...spec(3) });
  await agents(rig);
  const before = rig.events.length;
  await assert.rejects(scaleDeployment(rig.store, admin, d.id, 4), /vcpus 0\+4 > 3/);
  assert.equal(rig.events.length, before);
  assert.equal((await deployment(rig, d.id)).replicas, 3);
  await rig.close();
});

test('deleting a deployment deletes its replicas through the instance delete path; none comes back', async () => {
  const rig = await rigWithHost();
  const d = await createDeployment(rig.store, admin, { project: 'default', name: 'web', ...spec(3) });
  await agents(rig);
  const before = rig.events.length;
  await removeDeployment(rig.store, admin, d.id);
  const types = rig.events.slice(before).map(e => e.type);
  assert.deepEqual(types, ['instance.deleting', 'instance.deleting', 'instance.deleting', 'deployment.deleted']);
  await agents(rig);
  rig.clock.advance(60_000);
  await agents(rig);
  assert.deepEqual(await replicas(rig), []);
  const left = await rig.store.db.selectFrom('deployment_revisions').selectAll().execute();
  assert.deepEqual(left, []);
  await rig.close();
});

/** A heartbeat of `hostId` at the rig's time, as an agent's would be. */
async function beat(rig: Rig, hostId: string): Promise<void> {
  const t = new Date(rig.clock.now()).toISOString();
  await rig.store.db.updateTable('hosts').set({ last_heartbeat_at: t }).where('id', '=', hostId).execute();
}

/** Moves the clock on by each of `steps` (ms), `hostId` heartbeating after each, and lets `runner` act. */
async function beatThrough(rig: Rig, runner: Runner, hostId: string, steps: number[]): Promise<void> {
  for (const step of steps) {
    rig.clock.advance(step);
    await beat(rig, hostId);
    await runner.idle();
  }
}

/** The controllers of a server that also watches its hosts' heartbeats. */
const withLiveness = [
  (s: Store) => placer(s),
  (s: Store) => deploymentsController(s, opts),
  (s: Store) => liveness(s, { heartbeatSeconds: 5 }),
];

test('a replica whose host falls silent keeps its slot for the grace, is replaced after it, and is removed when its host is back', async () => {
  const rig = await openRig(...withLiveness);
  const h1 = await addHost(rig, 'h1', { allocatable_vcpus: 64, allocatable_memory_mib: 65_536 });
  const d = await createDeployment(rig.store, admin, {
    project: 'default',
    name: 'web',
    ...spec(1, { strategy: { lostGraceSeconds: 30 } }),
  });
  await agents(rig);
  const h2 = await addHost(rig, 'h2', { allocatable_vcpus: 64, allocatable_memory_mib: 65_536 });
  const r = (await replicas(rig))[0]!;
  assert.equal(r.host_id, h1);
  // h1 stops heartbeating; h2 goes on.
  await beatThrough(rig, rig.runner, h2, [16_000, 10_000]);
  const host1 = await rig.store.db.selectFrom('hosts').selectAll().where('id', '=', h1).executeTakeFirstOrThrow();
  assert.equal(host1.state, 'not-ready');
  let rows = await replicas(rig);
  assert.deepEqual(
    rows.map(x => [x.id, x.desired_state]),
    [[r.id, 'running']],
    'within the grace the replica keeps its slot',
  );
  await beatThrough(rig, rig.runner, h2, [5_000]);
  rows = await replicas(rig);
  assert.equal(
    rows.find(x => x.id === r.id)?.state,
    'deleting',
    'past the grace it is let go, to be removed by its host',
  );
  const fresh = live(rows);
  assert.equal(fresh.length, 1);
  assert.equal(fresh[0]!.slot, 0);
  assert.equal(fresh[0]!.host_id, h2);
  const replaced = rig.events.filter(e => e.type === 'deployment.replica-replaced');
  assert.deepEqual(
    replaced.map(e => JSON.parse(e.data).reason),
    ['lost'],
  );
  assert.equal(rig.events.filter(e => e.type === 'deployment.replica-failed').length, 0);
  assert.equal((await deployment(rig, d.id)).replacements, 1);
  // h1 is back: its agent is told to remove the replaced replica, and nothing new is made.
  await heartbeat(rig.store, h1, undefined);
  await rig.runner.idle();
  const assigned = (await assignedTo(rig.store.db, h1)).map(a => [a.id, a.desired_state]);
  assert.deepEqual(assigned, [[r.id, 'deleted']]);
  await agents(rig);
  assert.deepEqual(
    (await replicas(rig)).map(x => [x.host_id, x.state]),
    [[h2, 'running']],
  );
  await rig.close();
});

test('after a long server outage, silence counts from the restart: hosts that beat again keep their replicas', async () => {
  const rig = await openRig(...withLiveness);
  const h1 = await addHost(rig, 'h1', { allocatable_vcpus: 64, allocatable_memory_mib: 65_536 });
  await createDeployment(rig.store, admin, {
    project: 'default',
    name: 'web',
    ...spec(2, { strategy: { lostGraceSeconds: 30 } }),
  });
  await agents(rig);
  const h2 = await addHost(rig, 'h2', { allocatable_vcpus: 64, allocatable_memory_mib: 65_536 });
  const before = (await replicas(rig)).map(r => [r.id, r.host_id]);
  // The server is stopped for ten minutes, then started again: new controllers.
  await rig.runner.stop();
  rig.clock.advance(600_000);
  const runner = new Runner({
    subscribe: l => rig.store.onEvent(l),
    clock: rig.clock,
    log: { error: obj => assert.fail(JSON.stringify(obj)) },
  });
  for (const c of withLiveness) runner.add(c(rig.store));
  runner.start();
  await runner.idle();
  const states = async () =>
    (await rig.store.db.selectFrom('hosts').select(['id', 'state']).orderBy('name').execute()).map(h => h.state);
  assert.deepEqual(await states(), ['ready', 'ready'], 'no host is taken for down on the restart');
  // h2's agent is back at once; h1's is not.
  await beatThrough(rig, runner, h2, Array(10).fill(2_500));
  assert.deepEqual(await states(), ['not-ready', 'ready']);
  assert.deepEqual(
    (await replicas(rig)).map(r => [r.id, r.host_id]),
    before,
    'within the grace from the restart, the silent host keeps its replicas',
  );
  await beatThrough(rig, runner, h2, Array(3).fill(2_500));
  const fresh = live(await replicas(rig));
  assert.deepEqual(
    fresh.map(r => r.host_id),
    [h2, h2],
    'past the grace from the restart, they are replaced on the host that beats',
  );
  assert.equal(h1, before[0]![1]);
  await runner.stop();
  await rig.close();
});

test('a replica lost with its host is replaced at once when the grace is 0, without a failure counted', async () => {
  const rig = await rigWithHost();
  await createDeployment(rig.store, admin, {
    project: 'default',
    name: 'web',
    ...spec(1, { strategy: { lostGraceSeconds: 0 } }),
  });
  await agents(rig);
  const other = await addHost(rig, 'h2', { allocatable_vcpus: 64, allocatable_memory_mib: 65_536 });
  const r = (await replicas(rig))[0]!;
  await rig.store.write(async ({ trx, emit }) => {
    await trx.updateTable('hosts').set({ state: 'down' }).where('id', '=', r.host_id).execute();
    await trx.updateTable('instances').set({ state: 'lost' }).where('id', '=', r.id).execute();
    emit({
      type: 'instance.state',
      projectId: rig.projectId,
      resourceType: 'instance',
      resourceId: r.id,
      actor: 'liveness',
      data: { from: 'running', to: 'lost', message: 'host h1 is down', exitCode: null },
    });
  });
  await rig.runner.idle();
  const rows = await replicas(rig);
  assert.equal(rows.find(x => x.id === r.id)?.state, 'deleting', 'the lost one waits for its host');
  const fresh = live(rows);
  assert.equal(fresh.length, 1);
  assert.equal(fresh[0]!.host_id, other);
  assert.equal(rig.events.filter(e => e.type === 'deployment.replica-failed').length, 0);
  await rig.close();
});

test('a draining host is emptied one replica at a time, never below replicas - maxUnavailable', async () => {
  const rig = await rigWithHost();
  const d = await createDeployment(rig.store, admin, {
    project: 'default',
    name: 'web',
    ...spec(3, { strategy: { maxSurge: 1, maxUnavailable: 0 } }),
  });
  await agents(rig);
  const h1 = (await replicas(rig))[0]!.host_id!;
  const h2 = await addHost(rig, 'h2', { allocatable_vcpus: 64, allocatable_memory_mib: 65_536 });
  await updateHost(rig.store, admin, h1, { state: 'draining' });
  const svc = new InstanceService(rig.store);
  let most = 0;
  for (let round = 0; round < 20; round++) {
    await rig.runner.idle();
    const rows = await replicas(rig);
    const running = rows.filter(x => x.state === 'running' && x.desired_state === 'running');
    assert.ok(running.length >= 3, `round ${round}: ${running.length} running`);
    const moving = rows.filter(x => x.host_id === h2 && x.state === 'scheduled');
    most = Math.max(most, moving.length);
    // One agent step at a time: h2 starts what it got, h1 removes what it was told to.
    const next = rows.find(x => x.state === 'scheduled' || x.state === 'deleting');
    if (!next) break;
    await svc.report(next.host_id!, next.id, { state: next.state === 'scheduled' ? 'running' : 'deleted' }, 'agent');
  }
  assert.equal(most, 1, 'maxSurge 1: one replacement at a time');
  const rows = await replicas(rig);
  assert.deepEqual(
    rows.map(x => [x.slot, x.host_id, x.state]),
    [
      [0, h2, 'running'],
      [1, h2, 'running'],
      [2, h2, 'running'],
    ],
  );
  const moved = rig.events.filter(e => e.type === 'instance.deleting').length;
  assert.equal(moved, 3);
  assert.equal((await deployment(rig, d.id)).phase, 'complete');
  await rig.close();
});

test('a revision not available within progressDeadlineSeconds fails; with autoRollback the previous template comes back', async () => {
  const rig = await rigWithHost();
  const svc = new InstanceService(rig.store);
  const strategy = { maxSurge: 1, maxUnavailable: 0, progressDeadlineSeconds: 30 };
  const d = await createDeployment(rig.store, admin, { project: 'default', name: 'web', ...spec(2, { strategy }) });
  await agents(rig);
  const v1 = live(await replicas(rig)).map(r => r.id);
  // Revision 2's replicas never become ready: the one made fails at once, each time.
  const breakNew = async () => {
    await rig.runner.idle();
    for (const r of live(await replicas(rig)))
      if (r.revision !== 1 && r.state === 'scheduled')
        await svc.report(r.host_id!, r.id, { state: 'failed', exitCode: 1, message: 'no such image' }, 'agent:h1');
    await rig.runner.idle();
  };
  const broken = (more: Partial<DeploymentSpec>) => {
    const s = spec(2, more);
    s.template = { ...s.template, image: 'docker.io/library/none:0' };
    return s;
  };
  await replaceDeployment(rig.store, admin, d.id, broken({ strategy }));
  await breakNew();
  assert.equal((await deployment(rig, d.id)).phase, 'degraded');
  rig.clock.advance(31_000);
  await breakNew();
  let st = await deployment(rig, d.id);
  assert.equal(st.phase, 'failed');
  assert.match(st.message, /^revision 2 was not available within 30 s \(0 of 2 replicas\): the rollout has failed/);
  assert.equal(st.revision, 2, 'without autoRollback the revision stays');
  assert.deepEqual(
    live(await replicas(rig))
      .filter(r => r.revision === 1)
      .map(r => r.id),
    v1,
    'the old replicas keep running',
  );
  const phases = rig.events.filter(e => e.type === 'deployment.phase').map(e => JSON.parse(e.data).to);
  assert.ok(phases.includes('failed'), 'the failure is an event');

  // Going back to the first template by hand makes revision 3; revision 1's replicas already run it and stay.
  const auto = { ...strategy, autoRollback: true };
  await replaceDeployment(rig.store, admin, d.id, spec(2, { strategy: auto }));
  await agents(rig);
  st = await deployment(rig, d.id);
  assert.equal(st.revision, 3);
  assert.equal(st.phase, 'complete');
  await replaceDeployment(rig.store, admin, d.id, broken({ strategy: auto }));
  await breakNew();
  rig.clock.advance(31_000);
  await breakNew();
  await agents(rig);
  st = await deployment(rig, d.id);
  assert.equal(st.revision, 5, 'the rollback is a new revision');
  assert.equal(st.phase, 'complete');
  const rev5 = await rig.store.db
    .selectFrom('deployment_revisions')
    .selectAll()
    .where('deployment_id', '=', d.id)
    .where('revision', '=', 5)
    .executeTakeFirstOrThrow();
  assert.equal(rev5.copied_from, 3);
  assert.equal(rev5.rolled_back_from, 4);
  const rolled = rig.events.filter(e => e.type === 'deployment.rolled-back').map(e => JSON.parse(e.data));
  assert.deepEqual(rolled, [{ from: 4, to: 3, revision: 5, automatic: true }]);
  // The replicas that ran the template gone back to were kept: the rollback replaced nothing that ran.
  const rows = live(await replicas(rig));
  assert.deepEqual(
    rows.map(r => [r.id, r.state]),
    v1.map(id => [id, 'running']),
  );
  await rig.close();
});

test('canaries wait for a promotion; paused, nothing old is replaced; a rollback to a missing revision changes nothing', async () => {
  const rig = await rigWithHost();
  const strategy = { maxSurge: 1, maxUnavailable: 0, canary: 1 };
  const d = await createDeployment(rig.store, admin, { project: 'default', name: 'web', ...spec(3, { strategy }) });
  await agents(rig);
  const v2 = spec(3, { strategy });
  v2.template = { ...v2.template, image: 'docker.io/library/busybox:1.37' };
  await replaceDeployment(rig.store, admin, d.id, v2);
  await agents(rig);
  let rows = live(await replicas(rig));
  assert.deepEqual(
    rows.map(r => r.revision),
    [2, 1, 1],
    'one canary in slot 0',
  );
  assert.equal((await deployment(rig, d.id)).phase, 'awaiting-promotion');
  // Paused, the promotion waits too.
  await setPaused(rig.store, admin, d.id, true);
  await promoteDeployment(rig.store, admin, d.id);
  await agents(rig);
  assert.equal((await deployment(rig, d.id)).phase, 'paused');
  assert.deepEqual(
    live(await replicas(rig)).map(r => r.revision),
    [2, 1, 1],
  );
  await assert.rejects(promoteDeployment(rig.store, admin, d.id), (e: ApiError) => e.status === 409);
  await setPaused(rig.store, admin, d.id, false);
  await agents(rig);
  rows = live(await replicas(rig));
  assert.deepEqual(
    rows.map(r => r.revision),
    [2, 2, 2],
  );
  assert.equal((await deployment(rig, d.id)).phase, 'complete');
  const promoted = rig.events.filter(e => e.type === 'deployment.promoted').map(e => JSON.parse(e.data));
  assert.deepEqual(promoted, [{ revision: 2, automatic: false }]);

  // A rollback to a revision that does not exist: 404, nothing written.
  const before = rig.events.length;
  await assert.rejects(rollbackDeployment(rig.store, admin, d.id, 7), (e: ApiError) => e.status === 404);
  await assert.rejects(rollbackDeployment(rig.store, admin, d.id, 2), (e: ApiError) => e.status === 409);
  assert.equal(rig.events.length, before);
  assert.equal((await deployment(rig, d.id)).revision, 2);
  // Undo: revision 3 copies revision 1, rolled out with its canary promoted by itself this time.
  await replaceDeployment(rig.store, admin, d.id, { ...v2, strategy: { ...strategy, canaryPromotion: 'auto' } });
  const back = await rollbackDeployment(rig.store, admin, d.id, undefined);
  assert.equal(back.revision, 3);
  await agents(rig);
  const st = await deployment(rig, d.id);
  assert.equal(st.phase, 'complete');
  assert.deepEqual(
    live(await replicas(rig)).map(r => r.revision),
    [3, 3, 3],
  );
  assert.deepEqual(
    rig.events.filter(e => e.type === 'deployment.rolled-back').map(e => JSON.parse(e.data)),
    [{ from: 2, to: 1, revision: 3, automatic: false }],
  );
  await rig.close();
});
