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
import { now } from '../lib/time.ts';
import type { EventType } from '../model/events.ts';
import { requestOf, snapshot } from '../services/placement.ts';
import { instancesById, pendingInstances, updateInstance } from '../store/instances.ts';
import type { Store } from '../store/store.ts';
import type { Controller, Pass } from './runner.ts';

/** Events that bring one instance to placement. */
const placeTypes = new Set<EventType>(['instance.created', 'instance.rescheduled']);

/** The largest batch of named instances placed in one transaction. */
const BATCH = 500;

export interface PlacerOptions {
  resyncMs?: number;
}

export function placer(store: Store, o: PlacerOptions = {}): Controller {
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
      if (pass.resync || pass.events.some(e => !placeTypes.has(e.type))) return place(store, 'all');
      const ids = [...new Set(pass.events.map(e => e.resource_id))];
      for (let i = 0; i < ids.length; i += BATCH) await place(store, ids.slice(i, i + BATCH));
    },
  };
}

async function place(store: Store, ids: string[] | 'all'): Promise<void> {
  await store.write(async ({ trx, emit }) => {
    // By id the primary key answers; the state filter is applied here so the
    // planner is never tempted by the (large) set of pending rows.
    const rows = ids === 'all' ? await pendingInstances(trx) : await instancesById(trx, ids);
    const pending = rows.filter(r => r.state === 'pending' && r.desired_state !== 'deleted');
    if (pending.length === 0) return;
    const snap = await snapshot(trx);
    const sched = snap.scheduler;
    for (const inst of pending) {
      const request = requestOf(inst, snap);
      const result = sched.place(request);
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
      sched.commit(result.hostId, request);
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
