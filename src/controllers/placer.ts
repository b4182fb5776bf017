// The placer: the one committer of placements. Its rules:
// - `instance.created` and `instance.rescheduled` bring those instances to
//   placement. Events that may let a waiting instance fit somewhere (a host
//   registered, changed, back or gone; an instance deleted) and every resync
//   retry every pending instance.
// - A batch is placed in one transaction: the cluster is read inside it and
//   updated after each placement, so a batch never promises capacity twice,
//   and the runner never runs two passes at once, so neither do two batches.
//   The choice itself is the pure scheduler's (src/scheduler/).
// - An instance that fits on no host while some host is ready fails at once,
//   saying why (`unplaced: <reason>`); with no host ready (a cluster starting
//   up) it waits, its message saying why, and is tried again when hosts change.
// - Reading the cluster is most of a pass's cost on a large fleet, so a pass
//   may reuse the previous pass's snapshot, with that pass's placements in it,
//   while only instances were created, placed or changed state since: any
//   other event (a host changed, an instance deleted or moved back to pending,
//   a group or a project changed) drops it, and so do a resync, a failed pass
//   and an age of one second (heartbeats change hosts' fingerprints without an
//   event). A reused snapshot can only be more cautious than the store, never
//   less: no one but the placer takes capacity. An instance it cannot place is
//   tried again on a fresh read before it is failed.
import { now } from '../lib/time.ts';
import type { EventType } from '../model/events.ts';
import { requestOf, type Snapshot, snapshot } from '../services/placement.ts';
import { anyEventSince, lastSeq } from '../store/events.ts';
import { instancesById, pendingInstances, updateInstance } from '../store/instances.ts';
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
  /** the newest event the snapshot has seen */
  private seq = 0;
  private takenAt = 0;

  /**
   * A snapshot for this pass, and whether it was read just now. The event log
   * is read in the pass's own transaction, so a change committed in the same
   * group, just before, is seen too.
   */
  async get(trx: Trx, now: number, fresh: boolean): Promise<{ snap: Snapshot; read: boolean }> {
    const reuse =
      !fresh &&
      this.snap !== undefined &&
      now - this.takenAt < SNAPSHOT_MAX_AGE_MS &&
      !(await anyEventSince(trx, this.seq, keepSnapshot));
    const seq = await lastSeq(trx);
    if (reuse && this.snap) {
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
    ],
    resyncMs: o.resyncMs ?? 30_000,
    async reconcile(pass: Pass) {
      try {
        if (pass.resync) cache.drop();
        if (pass.resync || pass.events.some(e => !placeTypes.has(e.type)))
          return await place(store, cache, pass, 'all', o.nodes);
        const ids = [...new Set(pass.events.map(e => e.resource_id))];
        for (let i = 0; i < ids.length; i += BATCH) await place(store, cache, pass, ids.slice(i, i + BATCH), o.nodes);
      } catch (err) {
        // The snapshot may hold placements that were never committed.
        cache.drop();
        throw err;
      }
    },
  };
}

async function place(
  store: Store,
  cache: SnapshotCache,
  pass: Pass,
  ids: string[] | 'all',
  nodes: NodeService | undefined,
): Promise<void> {
  await store.write(async ctx => {
    const { trx, emit } = ctx;
    // By id the primary key answers; the state filter is applied here so the
    // planner is never tempted by the (large) set of pending rows.
    const rows = ids === 'all' ? await pendingInstances(trx) : await instancesById(trx, ids);
    const pending = rows.filter(r => r.state === 'pending' && r.desired_state !== 'deleted');
    if (pending.length === 0) return;
    let { snap, read } = await cache.get(trx, pass.now, false);
    for (const inst of pending) {
      let request = requestOf(inst, snap);
      let result = snap.scheduler.place(request);
      if (!result.ok && !read) {
        // Refuse only on what the store holds now, not on a reused snapshot.
        ({ snap, read } = await cache.get(trx, pass.now, true));
        request = requestOf(inst, snap);
        result = snap.scheduler.place(request);
      }
      let metal: MetalPlacement | undefined;
      if (result.ok && request.whole) {
        metal = await claimNode(ctx, nodes, inst, result.hostId);
        if (!metal.ok) result = { ok: false, reason: metal.reason };
      }
      if (!result.ok) {
        const message = `unplaced: ${result.reason}`;
        const fails = snap.anyReady;
        if (!fails && inst.message === message) continue;
        emit({
          type: 'instance.unplaced',
          projectId: inst.project_id,
          resourceType: 'instance',
          resourceId: inst.id,
          actor: 'scheduler',
          data: { reason: result.reason },
        });
        const t = now();
        const update = fails ? { state: 'failed', message, finished_at: t, updated_at: t } : { message, updated_at: t };
        await updateInstance(trx, inst.id, update);
        if (fails)
          emit({
            type: 'instance.state',
            projectId: inst.project_id,
            resourceType: 'instance',
            resourceId: inst.id,
            actor: 'scheduler',
            data: { from: 'pending', to: 'failed', message, exitCode: null },
          });
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
        updated_at: now(),
      });
      if (metal?.ok) await nodes!.startDeploy(ctx, result.hostId, inst.id);
      emit({
        type: 'instance.scheduled',
        projectId: inst.project_id,
        resourceType: 'instance',
        resourceId: inst.id,
        actor: 'scheduler',
        host: hostId,
        data: { hostId },
      });
    }
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
