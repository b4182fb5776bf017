// Host liveness. Its rules:
// - A host whose agent has heartbeated before and then misses `notReadyAfter`
//   heartbeats (3 by default) goes from ready to not-ready; one that misses
//   `downAfter` (12) goes down, from ready, not-ready or draining. A heartbeat
//   brings it back (src/api/agent.ts), not this controller. Hosts that never
//   had an agent (registered by hand) are left alone.
// - Every instance active on a down host (scheduled, starting, running,
//   paused, stopping) becomes `lost`: nobody can say whether it still runs
//   until the host's agent is back and reports what it sees. The host's going
//   down and its instances' loss are one transaction; later passes also catch
//   an instance made active on a host that is already down.
// - Moving lost instances elsewhere is not this controller's work.
// - Silence counts from this server's start at the earliest: while it was
//   stopped nobody could hear the hosts, and a restart after a long outage
//   must not take every host for down and have its replicas replaced.
//   (Kubernetes' node lifecycle controller does the same.)
// It is driven by time alone: a pass every half heartbeat, reading heartbeat
// ages against the runner's clock.
import { now } from '../lib/time.ts';
import { activeStates } from '../model/instance-state.ts';
import { heartbeatingHosts, hostNameAndState, moveHost } from '../store/hosts.ts';
import { downHostsHolding, markLost, onHostIn } from '../store/instances.ts';
import type { Store, WriteContext } from '../store/store.ts';
import type { Controller, Pass } from './runner.ts';

export interface LivenessOptions {
  heartbeatSeconds: number;
  /** missed heartbeats before not-ready */
  notReadyAfter?: number;
  /** missed heartbeats before down */
  downAfter?: number;
}

export function liveness(store: Store, o: LivenessOptions): Controller {
  const notReadyMs = o.heartbeatSeconds * (o.notReadyAfter ?? 3) * 1000;
  const downMs = o.heartbeatSeconds * (o.downAfter ?? 12) * 1000;
  return {
    name: 'liveness',
    wakeOn: [],
    resyncMs: Math.max(250, (o.heartbeatSeconds * 1000) / 2),
    async reconcile(pass: Pass) {
      const hosts = await heartbeatingHosts(store.db, ['ready', 'not-ready', 'draining']);
      for (const h of hosts) {
        const at = h.last_heartbeat_at!;
        const heard = Date.parse(at);
        const age = pass.now - Math.max(heard, pass.startedAt);
        const next = age > downMs ? 'down' : age > notReadyMs && h.state === 'ready' ? 'not-ready' : null;
        if (!next) continue;
        const reason =
          heard < pass.startedAt
            ? `no heartbeat in the ${Math.round(age / 1000)} s since the server started`
            : `no heartbeat for ${Math.round(age / 1000)} s`;
        await store.write(ctx => move(ctx, { id: h.id, state: h.state, at }, next, reason));
      }
      const stranded = await downHostsHolding(store.db, activeStates);
      for (const h of stranded) await store.write(ctx => loseInstances(ctx, h.id));
    },
  };
}

interface Seen {
  id: string;
  state: string;
  /** the last heartbeat seen */
  at: string;
}

/** Moves a host on from what was seen, unless it changed since (a heartbeat came); down loses its instances. */
async function move(ctx: WriteContext, h: Seen, to: string, reason: string): Promise<void> {
  const hostId = h.id;
  const from = h.state;
  const moved = await moveHost(ctx.trx, hostId, from, h.at, to, now());
  if (!moved) return;
  ctx.emit({
    type: 'host.state',
    projectId: moved.pool,
    resourceType: 'host',
    resourceId: hostId,
    actor: 'liveness',
    host: hostId,
    data: { from, to, reason },
  });
  if (to === 'down') await loseInstances(ctx, hostId, reason);
}

async function loseInstances({ trx, emit }: WriteContext, hostId: string, reason?: string): Promise<void> {
  const host = await hostNameAndState(trx, hostId);
  if (host?.state !== 'down') return;
  const active = await onHostIn(trx, hostId, activeStates);
  if (active.length === 0) return;
  const message = reason ? `host ${host.name} is down (${reason})` : `host ${host.name} is down`;
  await markLost(
    trx,
    active.map(i => i.id),
    message,
    now(),
  );
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
}
