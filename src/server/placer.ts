// The committer: turns pending instances into placements. One placement pass at
// a time; each commit re-reads host usage inside its transaction so capacity is
// never promised twice. The choice itself is made by the pure scheduler.
import type { FastifyBaseLogger } from 'fastify';
import { now } from '../lib/time.ts';
import { requestOf, snapshot } from '../services/placement.ts';
import type { Store } from '../store/store.ts';

// Events that may let a waiting instance fit somewhere: every pending instance is retried.
const hostTypes = new Set([
  'host.registered',
  'host.updated',
  'host.created',
  'host.state',
  'host.deleted',
  'instance.deleted',
]);
// Events that bring one instance to placement.
const instanceTypes = new Set(['instance.created', 'instance.rescheduled']);

export class Placer {
  private running = false;
  private readonly queue = new Set<string>();
  private retryAll = true;
  private readonly store: Store;
  private readonly log: FastifyBaseLogger;
  private idle: Promise<void> = Promise.resolve();

  constructor(store: Store, log: FastifyBaseLogger) {
    this.store = store;
    this.log = log;
    store.onEvent(e => {
      if (instanceTypes.has(e.type)) {
        this.queue.add(e.resource_id);
        this.kick();
      } else if (hostTypes.has(e.type)) {
        this.retryAll = true;
        this.kick();
      }
    });
  }

  /** Ask for a placement pass soon; passes never overlap. */
  kick(): void {
    if (this.running) return;
    this.running = true;
    this.idle = new Promise(resolve => {
      setImmediate(() => {
        void this.loop().finally(resolve);
      });
    });
  }

  /** Resolves when no pass is running (tests and shutdown). */
  async settled(): Promise<void> {
    while (this.running) await this.idle;
  }

  private async loop(): Promise<void> {
    try {
      while (this.retryAll || this.queue.size > 0) {
        let ids: string[] | 'all';
        if (this.retryAll) {
          this.retryAll = false;
          this.queue.clear();
          ids = 'all';
        } else {
          ids = [...this.queue].slice(0, 500);
          for (const id of ids) this.queue.delete(id);
        }
        await this.pass(ids);
      }
    } catch (err) {
      this.log.error({ err }, 'placement pass failed');
    } finally {
      this.running = false;
    }
  }

  /**
   * Places a batch in one transaction: the snapshot is read inside it and
   * updated after each placement, so the batch never promises capacity twice.
   */
  private async pass(ids: string[] | 'all'): Promise<void> {
    await this.store.write(async ({ trx, emit }) => {
      // By id the primary key answers; the state filter is applied here so the
      // planner is never tempted by the (large) set of pending rows.
      const rows =
        ids === 'all'
          ? await trx.selectFrom('instances').selectAll().where('state', '=', 'pending').orderBy('id').execute()
          : await trx.selectFrom('instances').selectAll().where('id', 'in', ids).orderBy('id').execute();
      const pending = rows.filter(r => r.state === 'pending' && r.desired_state !== 'deleted');
      if (pending.length === 0) return;
      const snap = await snapshot(trx);
      const sched = snap.scheduler;
      const anyReady = snap.anyReady;
      for (const inst of pending) {
        const request = requestOf(inst, snap);
        const result = sched.place(request);
        if (!result.ok) {
          const message = `unplaced: ${result.reason}`;
          // With ready hosts that cannot take it the instance fails at once,
          // saying why; with none ready at all (a cluster starting up) it waits.
          if (anyReady) {
            const t = now();
            await trx
              .updateTable('instances')
              .set({ state: 'failed', message, finished_at: t, updated_at: t })
              .where('id', '=', inst.id)
              .execute();
            emit({
              type: 'instance.unplaced',
              projectId: inst.project_id,
              resourceType: 'instance',
              resourceId: inst.id,
              actor: 'scheduler',
              data: { reason: result.reason },
            });
            emit({
              type: 'instance.state',
              projectId: inst.project_id,
              resourceType: 'instance',
              resourceId: inst.id,
              actor: 'scheduler',
              data: { from: 'pending', to: 'failed', message, exitCode: null },
            });
          } else if (inst.message !== message) {
            await trx.updateTable('instances').set({ message, updated_at: now() }).where('id', '=', inst.id).execute();
            emit({
              type: 'instance.unplaced',
              projectId: inst.project_id,
              resourceType: 'instance',
              resourceId: inst.id,
              actor: 'scheduler',
              data: { reason: result.reason },
            });
          }
          continue;
        }
        sched.commit(result.hostId, request);
        await trx
          .updateTable('instances')
          .set({ host_id: result.hostId, state: 'scheduled', message: '', updated_at: now() })
          .where('id', '=', inst.id)
          .execute();
        emit({
          type: 'instance.scheduled',
          projectId: inst.project_id,
          resourceType: 'instance',
          resourceId: inst.id,
          actor: 'scheduler',
          data: { hostId: result.hostId },
        });
      }
    });
  }
}
