// Host liveness: a host whose agent stops heartbeating becomes not-ready, then
// down. Hosts that never had an agent (registered by hand) are left alone.
import type { FastifyBaseLogger } from 'fastify';
import { now } from '../lib/time.ts';
import { activeStates } from '../model/instance-state.ts';
import type { Store } from '../store/store.ts';

export interface LivenessOptions {
  heartbeatSeconds: number;
  /** missed heartbeats before not-ready */
  notReadyAfter?: number;
  /** missed heartbeats before down */
  downAfter?: number;
}

export function startLiveness(store: Store, log: FastifyBaseLogger, o: LivenessOptions): () => void {
  const notReadyMs = o.heartbeatSeconds * (o.notReadyAfter ?? 3) * 1000;
  const downMs = o.heartbeatSeconds * (o.downAfter ?? 12) * 1000;
  const tick = async () => {
    const t = Date.now();
    const rows = await store.db
      .selectFrom('hosts')
      .select(['id', 'name', 'state', 'last_heartbeat_at', 'pool'])
      .where('last_heartbeat_at', 'is not', null)
      .where('state', 'in', ['ready', 'not-ready', 'draining'])
      .execute();
    for (const h of rows) {
      const age = t - Date.parse(h.last_heartbeat_at!);
      const next = age > downMs ? 'down' : age > notReadyMs && h.state === 'ready' ? 'not-ready' : null;
      if (!next || next === h.state) continue;
      const reason = `no heartbeat for ${Math.round(age / 1000)} s`;
      await store.write(async ({ trx, emit }) => {
        const t = now();
        const moved = await trx
          .updateTable('hosts')
          .set({ state: next, updated_at: t })
          .where('id', '=', h.id)
          .where('state', '=', h.state)
          .executeTakeFirst();
        if (Number(moved.numUpdatedRows) === 0) return;
        emit({
          type: 'host.state',
          projectId: h.pool,
          resourceType: 'host',
          resourceId: h.id,
          actor: 'liveness',
          data: { from: h.state, to: next, reason },
        });
        if (next !== 'down') return;
        // What was active on a host that is gone is lost: nobody can say
        // whether it still runs until the host's agent is back.
        const active = await trx
          .selectFrom('instances')
          .select(['id', 'project_id', 'state', 'exit_code'])
          .where('host_id', '=', h.id)
          .where('state', 'in', [...activeStates])
          .execute();
        if (active.length === 0) return;
        const message = `host ${h.name} is down (${reason})`;
        await trx
          .updateTable('instances')
          .set({ state: 'lost', message, updated_at: t })
          .where(
            'id',
            'in',
            active.map(i => i.id),
          )
          .execute();
        for (const i of active) {
          emit({
            type: 'instance.state',
            projectId: i.project_id,
            resourceType: 'instance',
            resourceId: i.id,
            actor: 'liveness',
            data: { from: i.state, to: 'lost', message, exitCode: i.exit_code },
          });
        }
      });
    }
  };
  const timer = setInterval(
    () => {
      tick().catch((err: unknown) => log.error({ err }, 'liveness check failed'));
    },
    Math.max(250, (o.heartbeatSeconds * 1000) / 2),
  );
  timer.unref();
  return () => clearInterval(timer);
}
