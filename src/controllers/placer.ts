// The placer: the one committer of placements. Its rules:
// - `instance.created` and `instance.rescheduled` bring those instances to
//   placement. Events that may let a waiting instance fit somewhere (a host
//   registered, changed, back or gone; a node changed; an instance deleted,
//   which is what gives capacity back: a stopped instance keeps its host; a
//   project's quota changed, which a bare-metal node is charged against) and
//   every resync retry every pending instance.
// - Pending instances are placed in queue order (src/scheduler/queue.ts):
//   higher priority first, then older first. One that does not fit blocks no
//   one: the next is tried on what is left, so capacity goes to the first in
//   order that it fits.
// - A batch is placed in one transaction: the cluster is read inside it and
//   updated after each placement, so a batch never promises capacity twice,
//   and the runner never runs two passes at once, so neither do two batches.
//   The choice itself is the pure scheduler's (src/scheduler/).
// - An instance that fits on no host waits in `pending` (`waitForCapacity`,
//   the default), its message saying why (`waiting for capacity: <counted
//   reasons>`): the message is rewritten only when the reasons change, and one
//   `instance.unplaced` event says it started waiting, so passes over waiting
//   instances write nothing while nothing changes. With `waitForCapacity`
//   false it fails at once (`unplaced: <reasons>`), unless no host at all is
//   ready (a cluster starting up): then it waits too.
// - An instance that fits on no host may preempt instances of lower priority
//   (src/services/preemption.ts states the rules, src/scheduler/preemption.ts
//   chooses the victims): it then waits, `waiting for N preempted instances
//   to stop`, and is placed in a later pass once they have released their
//   host. Until then each pass holds back for it what is free on that host
//   (up to what it asks for), and a pass that did so makes the next one place
//   every pending instance, so the preemptor is always there to hold it.
// - Reading the cluster is most of a pass's cost on a large fleet, so a pass
//   may reuse the previous pass's snapshot, with that pass's placements in it,
//   while only instances were created, placed or changed state since: any
//   other event (a host changed, an instance deleted or moved back to pending,
//   a group or a project changed) drops it, and so do a resync, a failed pass
//   and an age of one second (heartbeats change hosts' fingerprints without an
//   event). A reused snapshot can only be more cautious than the store, never
//   less: no one but the placer takes capacity. An instance it cannot place is
//   tried again on a fresh read before it waits or fails.
// - A pass for new instances that finds such another event in the log (its
//   wake-up may not have reached the placer yet) places every pending
//   instance instead, so capacity just freed goes to the waiting ones in
//   queue order, not to whoever was created next.
import { now } from '../lib/time.ts';
import type { EventType } from '../model/events.ts';
import { requestOf, type Snapshot, snapshot, WAITING } from '../services/placement.ts';
import { PreemptionPass } from '../services/preemption.ts';
import { inQueueOrder } from '../scheduler/queue.ts';
import { anyEventSince, lastSeq } from '../store/events.ts';
import { instancesById, pendingInstances, queueKeys, updateInstance } from '../store/instances.ts';
import type { NodeService } from '../services/nodes.ts';
import { giveQuota, takeQuota } from '../store/projects.ts';
import type { InstanceRow } from '../store/schema.ts';
import type { Store, Trx, WriteContext } from '../store/store.ts';
import type { Controller, Pass } from './runner.ts';

/** Events that bring one instance to placement. */
const placeTypes = new Set<EventType>(['instance.created', 'instance.rescheduled']);

/** The largest batch of named instances placed in one transaction. */
const BATCH = 500;

export interface PlacerOptions {
  resyncMs?: number;
  /** Bare-metal nodes: a metal instance placed on one starts its deploy. */
  nodes?: NodeService;
}

/** Events after which the previous pass's snapshot still holds: no capacity was freed or taken but by the placer. */
const keepSnapshot: readonly EventType[] = [
  'instance.created',
  'instance.scheduled',
  'instance.unplaced',
  'instance.state',
  'instance.health',
  'instance.start-requested',
  'instance.stop-requested',
  'instance.pause-requested',
  'instance.resume-requested',
  'instance.restart-requested',
  'instance.deleting',
];

/** The longest a snapshot is reused: hosts' fingerprints change by heartbeat, without an event. */
const SNAPSHOT_MAX_AGE_MS = 1000;

/** The previous pass's snapshot, while nothing but the placer changed what it holds. */
class SnapshotCache {
  private snap: Snapshot | undefined;
  /** the newest event the last snapshot read has seen */
  private seq: number | undefined;
  private takenAt = 0;

  /**
   * Whether something other than the placer may have changed the cluster
   * since the last snapshot was read (always, before the first). The event log
   * is read in the pass's own transaction, so a change committed in the same
   * group, just before, is seen too.
   */
  async changed(trx: Trx): Promise<boolean> {
    return this.seq === undefined || anyEventSince(trx, this.seq, keepSnapshot);
  }

  /** A snapshot for this pass, and whether it was read just now; `reuse` offers the last one, if young enough. */
  async get(trx: Trx, now: number, reuse: boolean): Promise<{ snap: Snapshot; read: boolean }> {
    const seq = await lastSeq(trx);
    if (reuse && this.snap && now - this.takenAt < SNAPSHOT_MAX_AGE_MS) {
      this.seq = seq;
      return { snap: this.snap, read: false };
    }
    this.snap = await snapshot(trx);
    this.seq = seq;
    this.takenAt = now;
    return { snap: this.snap, read: true };
  }

  drop(): void {
    this.snap = undefined;
  }

  /** Drops the snapshot, and makes the next pass place every pending instance. */
  forget(): void {
    this.snap = undefined;
    this.seq = undefined;
  }
}

export function placer(store: Store, o: PlacerOptions = {}): Controller {
  const cache = new SnapshotCache();
  return {
    name: 'placer',
    wakeOn: [
      ...placeTypes,
      'host.registered',
      'host.created',
      'host.updated',
      'host.state',
      'host.deleted',
      'node.state',
      'node.maintenance',
      'instance.deleted',
      'project.updated',
    ],
    resyncMs: o.resyncMs ?? 30_000,
    async reconcile(pass: Pass) {
      try {
        if (pass.resync) cache.drop();
        if (pass.resync || pass.events.some(e => !placeTypes.has(e.type)))
          return void (await place(store, cache, pass, 'all', o.nodes));
        let ids = [...new Set(pass.events.map(e => e.resource_id))];
        // Batches go in queue order too, so a burst's first batch is not its lowest priorities.
        if (ids.length > BATCH) ids = await inOrder(store, ids);
        for (let i = 0; i < ids.length; i += BATCH)
          if ((await place(store, cache, pass, ids.slice(i, i + BATCH), o.nodes)) === 'all') return;
      } catch (err) {
        // The snapshot may hold placements that were never committed.
        cache.drop();
        throw err;
      }
    },
  };
}

const queueKey = (r: Pick<InstanceRow, 'priority' | 'created_at' | 'id'>) => ({
  priority: r.priority,
  createdAt: r.created_at,
  id: r.id,
});

async function inOrder(store: Store, ids: readonly string[]): Promise<string[]> {
  const keys = [];
  for (let i = 0; i < ids.length; i += BATCH) keys.push(...(await queueKeys(store.db, ids.slice(i, i + BATCH))));
  return inQueueOrder(keys, queueKey).map(k => k.id);
}

/** Places the named pending instances, or every one ('all'); answers which it did. */
async function place(
  store: Store,
  cache: SnapshotCache,
  pass: Pass,
  ids: string[] | 'all',
  nodes: NodeService | undefined,
): Promise<'all' | 'named'> {
  return store.write(async ctx => {
    const { trx } = ctx;
    const changed = await cache.changed(trx);
    const all = ids === 'all' || changed;
    // By id the primary key answers; the state filter is applied here so the
    // planner is never tempted by the (large) set of pending rows.
    const rows = all ? await pendingInstances(trx) : await instancesById(trx, ids);
    const pending = inQueueOrder(
      rows.filter(r => r.state === 'pending' && r.desired_state !== 'deleted'),
      queueKey,
    );
    if (pending.length === 0) return all ? 'all' : 'named';
    let { snap, read } = await cache.get(trx, pass.now, !changed);
    const preemption = new PreemptionPass(trx);
    for (const inst of pending) {
      let request = requestOf(inst, snap);
      let result = snap.scheduler.place(request);
      if (!result.ok && !read) {
        // Refuse only on what the store holds now, not on a reused snapshot.
        ({ snap, read } = await cache.get(trx, pass.now, false));
        preemption.reapply(snap);
        request = requestOf(inst, snap);
        result = snap.scheduler.place(request);
      }
      let metal: MetalPlacement | undefined;
      if (result.ok && request.whole) {
        metal = await claimNode(ctx, nodes, inst, result.hostId);
        if (!metal.ok) result = { ok: false, reason: metal.reason };
      }
      if (!result.ok) {
        if (!(await preemption.tryFor(ctx, inst, request, snap)))
          await unplaced(ctx, inst, result.reason, snap.anyReady);
        continue;
      }
      snap.scheduler.commit(result.hostId, request);
      // A metal instance runs on its node and is driven by the node's conductor.
      const hostId = metal?.ok ? metal.conductor : result.hostId;
      await updateInstance(trx, inst.id, {
        host_id: hostId,
        ...(metal?.ok ? { node_id: result.hostId, ...metal.resources } : {}),
        state: 'scheduled',
        message: '',
        ...(inst.preempted_by !== null ? { preempted_by: null, preemption: '' } : {}),
        updated_at: now(),
      });
      if (metal?.ok) await nodes!.startDeploy(ctx, result.hostId, inst.id);
      ctx.emit({
        type: 'instance.scheduled',
        projectId: inst.project_id,
        resourceType: 'instance',
        resourceId: inst.id,
        actor: 'scheduler',
        host: hostId,
        data: { hostId },
      });
    }
    // Room held back for preemptors is no placement: the next pass reads
    // afresh, and places every pending instance, so the preemptors are there
    // to hold their room back again.
    if (preemption.touched) cache.forget();
    return all ? 'all' : 'named';
  });
}

/**
 * An instance no host can take now: it waits (it asked to, or no host is
 * ready at all), or it fails. A waiting instance's row is written only when
 * its reasons change, and its event only when it starts waiting.
 */
async function unplaced(
  { trx, emit }: WriteContext,
  inst: InstanceRow,
  reason: string,
  anyReady: boolean,
): Promise<void> {
  const waits = inst.wait_for_capacity === 1 || !anyReady;
  const message = `${waits ? WAITING : 'unplaced: '}${reason}${inst.preemption ? `; ${inst.preemption}` : ''}`;
  if (waits && inst.message === message) return;
  const t = now();
  if (!waits || !inst.message.startsWith(WAITING))
    emit({
      type: 'instance.unplaced',
      projectId: inst.project_id,
      resourceType: 'instance',
      resourceId: inst.id,
      actor: 'scheduler',
      data: { reason, waiting: waits },
    });
  if (waits) return updateInstance(trx, inst.id, { message, updated_at: t });
  await updateInstance(trx, inst.id, { state: 'failed', message, finished_at: t, updated_at: t });
  emit({
    type: 'instance.state',
    projectId: inst.project_id,
    resourceType: 'instance',
    resourceId: inst.id,
    actor: 'scheduler',
    data: { from: 'pending', to: 'failed', message, exitCode: null },
  });
}

type MetalPlacement =
  | { ok: true; conductor: string; resources: { vcpus: number; memory_mib: number; disk_gib: number } }
  | { ok: false; reason: string };

/**
 * A metal instance takes its whole node: it is charged the node's resources
 * in its project's quota (instead of what it asked for), when they fit.
 */
async function claimNode(
  { trx }: WriteContext,
  nodes: NodeService | undefined,
  inst: InstanceRow,
  nodeId: string,
): Promise<MetalPlacement> {
  const node = nodes ? await nodes.placeable(trx, nodeId) : undefined;
  if (!node) return { ok: false, reason: 'the chosen node is not available' };
  const asked = { vcpus: inst.vcpus, memoryMib: inst.memory_mib, diskGib: inst.disk_gib };
  const whole = node.capacity;
  await giveQuota(trx, inst.project_id, asked);
  if (!(await takeQuota(trx, inst.project_id, whole))) {
    await takeQuota(trx, inst.project_id, asked);
    return {
      ok: false,
      reason: `node ${node.name} (${whole.vcpus} vCPUs, ${whole.memoryMib} MiB, ${whole.diskGib} GiB) is beyond the project's quota`,
    };
  }
  return {
    ok: true,
    conductor: node.conductor,
    resources: { vcpus: whole.vcpus, memory_mib: whole.memoryMib, disk_gib: whole.diskGib },
  };
}
