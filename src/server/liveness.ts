// Host liveness: a host whose agent stops heartbeating becomes not-ready, then
// down. Hosts that never had an agent (registered by hand) are left alone.
import type { FastifyBaseLogger } from 'fastify';
import { now } from '../lib/time.ts';
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
      await store.write(async ({ trx, emit }) => {
        await trx.updateTable('hosts').set({ state: next, updated_at: now() }).where('id', '=', h.id).where('state', '=', h.state).execute();
        emit({ type: 'host.state', projectId: h.pool, resourceType: 'host', resourceId: h.id, actor: 'liveness', data: { from: h.state, to: next, reason: `no heartbeat for ${Math.round(age / 1000)} s` } });
      });
    }
  };
  const timer = setInterval(() => {
    tick().catch((err: unknown) => log.error({ err }, 'liveness check failed'));
  }, Math.max(250, (o.heartbeatSeconds * 1000) / 2));
  timer.unref();
  return () => clearInterval(timer);
}
