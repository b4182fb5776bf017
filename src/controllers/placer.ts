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
import type { Store, Trx } from '../store/store.ts';
import type { Controller, Pass } from './runner.ts';

/** Events that bring one instance to placement. */
const placeTypes = new Set<EventType>(['instance.created', 'instance.rescheduled']);

/** The largest batch of named instances placed in one transaction. */
const BATCH = 500;

export interface PlacerOptions {
  resyncMs?: number;
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
      'instance.deleted',
    ],
    resyncMs: o.resyncMs ?? 30_000,
    async reconcile(pass: Pass) {
      try {
        if (pass.resync) cache.drop();
        if (pass.resync || pass.events.some(e => !placeTypes.has(e.type)))
          return await place(store, cache, pass, 'all');
        const ids = [...new Set(pass.events.map(e => e.resource_id))];
        for (let i = 0; i < ids.length; i += BATCH) await place(store, cache, pass, ids.slice(i, i + BATCH));
      } catch (err) {
        // The snapshot may hold placements that were never committed.
        cache.drop();
        throw err;
      }
    },
  };
}

async function place(store: Store, cache: SnapshotCache, pass: Pass, ids: string[] | 'all'): Promise<void> {
  await store.write(async ({ trx, emit }) => {
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
      await updateInstance(trx, inst.id, {
        host_id: result.hostId,
        state: 'scheduled',
        message: '',
        updated_at: now(),
      });
      emit({
        type: 'instance.scheduled',
        projectId: inst.project_id,
        resourceType: 'instance',
        resourceId: inst.id,
        actor: 'scheduler',
        host: result.hostId,
        data: { hostId: result.hostId },
      });
    }
  });
}
