// The deployments controller: keeps each deployment's replicas of its current
// revision running. It is a pure plan (`planDeployment`: what is stored in,
// actions out) and a thin executor that runs one deployment's plan in one
// write. The plan's rules:
// - Slots 0..replicas-1 each hold one live replica. An empty slot gets one of
//   the target revision (the current one; while paused, the newest any live
//   replica runs). Replicas in slots >= replicas are deleted, highest first.
// - A replica that ended (failed, or stopped while it should run, with no
//   restart by its policy coming) or runs unhealthy (its health check failed
//   `retries` times in a row) is counted once against its slot: its
//   failures in a row set a backoff, base * 2^(failures-1) capped at max, kept
//   in the store. The failed replica stays (its logs readable; an unhealthy
//   one may recover meanwhile and stay) until the backoff ends; then it is
//   deleted and the slot filled again. Only failures of the revision a slot
//   now gets hold it back. A slot's count is cleared once its replica has
//   been available for `resetMs`, or when the failures were of another
//   revision than the one it now gets.
// - A changed template rolls out slot by slot: while fewer than replicas +
//   maxSurge replicas live, a slot with only an old replica gets a new one
//   beside it; an old replica is deleted once its slot's new one is available,
//   or (without surge room) before its replacement is created, as long as
//   availability stays at replicas - maxUnavailable or more.
// - A replica whose host has not been heard from (not ready, down, or the
//   replica lost with it) keeps its slot, not available, for lostGraceSeconds
//   from the host's last heartbeat; then it is deleted and its slot filled
//   again in the same write, without a failure counted. Deleted, it is what
//   its agent removes first when it is back (src/agent/agent.ts), so a slot
//   never has two copies of one revision that the store says should run.
// - A replica on a draining host moves as a rollout step does: a successor
//   beside it within maxSurge, or it goes first within maxUnavailable. Paused,
//   or with canaries waiting, its successor keeps its revision.
// - A slot never holds two live replicas of one revision (one leaving a
//   draining host aside): a second one is deleted.
// - A revision not complete (every replica of it available) within
//   progressDeadlineSeconds of its creation has failed (phase `failed`); with
//   autoRollback the previous revision's template becomes current again as a
//   new revision, unless the failed one was itself an automatic rollback. Once
//   complete, a revision's deadline is behind it. Replicas of an older
//   revision with the current template count as current: a rollback keeps them.
// - Creations stop at what the project's quota can take (`headroom`); the rest
//   wait, and the status says so.
// Replicas going away (deleting) hold nothing for the plan but their quota.
// The controller runs the deployments its events name (deployment changes,
// their replicas' state, health and deletion, their hosts' state), those whose plan asked to be
// looked at again at a time that has come (a backoff's end, a replica
// becoming available), and every one at a full resync.
import { now as isoNow } from '../lib/time.ts';
import type { EventType } from '../model/events.ts';
import { fullStrategy, type RolloutPhase, resolveStrategy, type StrategyOut } from '../model/deployments.ts';
import type { InstanceTemplate } from '../kinds/schemas.ts';
import {
  deploymentsOfInstances,
  deploymentIds,
  deploymentsOnHosts,
  deleteSlot,
  findDeployment,
  findRevision,
  putSlot,
  replicasOf,
  slotsOf,
  takenNames,
  updateDeployment,
  updateRevision,
} from '../store/deployments.ts';
import { hostsLiveness } from '../store/hosts.ts';
import { findInstance } from '../store/instances.ts';
import { getProjectById } from '../store/projects.ts';
import type { DeploymentRevisionRow, DeploymentRow, DeploymentSlotRow, ProjectRow } from '../store/schema.ts';
import type { Store, WriteContext } from '../store/store.ts';
import { ApiError } from '../lib/errors.ts';
import { deleteInstanceIn, insertNewInstance, resolveGroups, resourcesOf } from '../services/instances.ts';
import { checkSecretRefs } from '../services/secrets.ts';
import {
  promoteIn,
  type ReplicaView,
  replicaName,
  replicaSpec,
  replicaView,
  rollBackIn,
} from '../services/deployments.ts';
import type { Controller, Pass } from './runner.ts';

export interface BackoffPolicy {
  /** The wait after a slot's first failure; it doubles with each failure in a row. */
  baseMs: number;
  maxMs: number;
  /** A slot's failures are forgotten once its replica has been available this long. */
  resetMs: number;
}

export const defaultBackoff: BackoffPolicy = { baseMs: 1000, maxMs: 300_000, resetMs: 600_000 };

/** A slot's failures in a row, as stored. */
export interface SlotState {
  slot: number;
  failures: number;
  /** the revision the failures were counted for */
  revision: number;
  retryAt: number | null;
  reason: string;
  /** the replica whose failure was counted last */
  failedInstance: string | null;
}

export interface PlanInput {
  now: number;
  replicas: number;
  paused: boolean;
  /** the current revision */
  revision: number;
  strategy: Pick<StrategyOut, 'maxSurge' | 'maxUnavailable' | 'minHealthySeconds'>;
  /** every instance of the deployment, those going away included */
  instances: readonly ReplicaView[];
  slots: readonly SlotState[];
  /** replicas the project's quota can take beyond those there are now (Infinity: no limit) */
  headroom: number;
  backoff: BackoffPolicy;
  /** the current revision's rollout and its deadline; none: no deadline */
  progress?: Progress;
  /** the current revision's canaries; none: no canaries */
  canary?: Canary;
  /** how long a replica's host may go unheard before the replica is replaced elsewhere (default 0: at once) */
  lostGraceSeconds?: number;
}

export interface Progress {
  /** when the rollout of the current revision began (ms) */
  startedAt: number;
  /** whether it has completed once: the deadline is behind it then */
  completed: boolean;
  deadlineSeconds: number;
  autoRollback: boolean;
  /** there is a previous revision to go back to, and the current one is not itself an automatic rollback */
  canRollBack: boolean;
}

export interface Canary {
  /** how many replicas of a new revision are made before the rest */
  count: number;
  /** promoted already: the rollout goes on */
  promoted: boolean;
  /** promotes itself once its canaries are available */
  auto: boolean;
}

export type DeleteReason = 'scale-down' | 'failed' | 'lost' | 'rollout' | 'drain' | 'duplicate';

export type Action =
  | { type: 'create'; slot: number; revision: number; replacing?: { instance: string; reason: 'failed' | 'lost' } }
  | { type: 'delete'; instance: string; slot: number; reason: DeleteReason }
  /** counts a failed replica against its slot */
  | {
      type: 'fail';
      slot: number;
      instance: string;
      revision: number;
      failures: number;
      retryAt: number;
      reason: string;
    }
  /** forgets a slot's failures */
  | { type: 'reset'; slot: number };

export interface PlannedStatus {
  replicas: number;
  updated: number;
  ready: number;
  available: number;
  phase: RolloutPhase;
  message: string;
}

export interface Plan {
  actions: Action[];
  /** the status once the actions are done */
  status: PlannedStatus;
  /** when the plan should be made again without any event (ms), or null */
  wakeAt: number | null;
  /** the rollout missed its deadline and goes back to the previous revision (the actions are then empty) */
  rollback: boolean;
  /** the canaries are available and promote themselves (canaryPromotion auto) */
  promote: boolean;
}

type Role = 'going' | 'lost' | 'ended' | 'live';

function roleOf(v: ReplicaView, now: number, graceMs: number): Role {
  if (v.desiredState === 'deleted' || v.state === 'deleting' || v.state === 'deleted') return 'going';
  const ended = (v.state === 'failed' || v.state === 'stopped') && v.desiredState === 'running' && !v.restarting;
  if (ended || v.unhealthy) return 'ended';
  // Unheard of for the grace: replaced. Within it, it keeps its slot (not available).
  if (v.unreachableSince !== null && now - Math.min(v.unreachableSince, now) >= graceMs) return 'lost';
  return 'live';
}

export function backoffDelay(failures: number, b: BackoffPolicy): number {
  return Math.min(b.maxMs, b.baseMs * 2 ** Math.max(0, failures - 1));
}

/** What one deployment needs done now, from what is stored: no I/O, the same input gives the same plan. */
export function planDeployment(input: PlanInput): Plan {
  const { now, replicas } = input;
  const actions: Action[] = [];
  const minHealthyMs = input.strategy.minHealthySeconds * 1000;
  const graceMs = (input.lostGraceSeconds ?? 0) * 1000;
  // A time in the future (another server's clock, a little ahead) counts as now.
  const isAvailable = (v: ReplicaView) => v.readySince !== null && now - Math.min(v.readySince, now) >= minHealthyMs;
  let wakeAt: number | null = null;
  const wake = (t: number) => {
    if (t > now && (wakeAt === null || t < wakeAt)) wakeAt = t;
  };

  // Live replicas by slot, the ones this plan keeps; the others are going or to be replaced.
  const live = new Map<number, ReplicaView[]>();
  const ended = new Map<number, ReplicaView>();
  const lost: ReplicaView[] = [];
  for (const v of input.instances) {
    const k = roleOf(v, now, graceMs);
    if (k === 'going') continue;
    if (k === 'live' && v.unreachableSince !== null) wake(v.unreachableSince + graceMs);
    if (v.slot >= replicas) {
      actions.push({ type: 'delete', instance: v.id, slot: v.slot, reason: 'scale-down' });
      continue;
    }
    if (k === 'lost') lost.push(v);
    else if (k === 'ended') ended.set(v.slot, v);
    else live.set(v.slot, [...(live.get(v.slot) ?? []), v]);
  }
  // Scale-down deletes highest slots first.
  actions.sort((a, b) => (b.type === 'delete' ? b.slot : 0) - (a.type === 'delete' ? a.slot : 0));

  const newest = Math.max(0, ...[...live.values()].flat().map(v => v.revision));
  const target = input.paused && newest > 0 ? newest : input.revision;

  // A slot never holds two live replicas of one revision (one on a draining
  // host aside, which its successor replaces): the extra ones go, the oldest
  // stays, one whose host is heard from before one whose host is not.
  const heard = (v: ReplicaView) => Number(v.unreachableSince !== null);
  for (const [slot, vs] of live) {
    const kept: ReplicaView[] = [];
    for (const v of [...vs].sort((a, b) => heard(a) - heard(b) || (a.createdAt < b.createdAt ? -1 : 1))) {
      if (kept.some(k => k.revision === v.revision && k.evicting === v.evicting))
        actions.push({ type: 'delete', instance: v.id, slot, reason: 'duplicate' });
      else kept.push(v);
    }
    live.set(slot, kept);
  }

  const slotState = new Map(input.slots.map(s => [s.slot, s]));
  for (const s of input.slots) if (s.slot >= replicas) actions.push({ type: 'reset', slot: s.slot });

  // Failures: counted once, then the slot waits for its backoff.
  const blocked = new Map<number, number>();
  const replacing = new Map<number, { instance: string; reason: 'failed' | 'lost' }>();
  for (const v of lost) {
    actions.push({ type: 'delete', instance: v.id, slot: v.slot, reason: 'lost' });
    if (!live.has(v.slot)) replacing.set(v.slot, { instance: v.name, reason: 'lost' });
  }
  for (const [slot, v] of ended) {
    // A failed replica beside a live one of the target (after a rollback, say,
    // or one that was leaving a draining host) just goes: its slot is served.
    if (live.get(slot)?.some(x => x.revision === target)) {
      actions.push({ type: 'delete', instance: v.id, slot, reason: 'failed' });
      continue;
    }
    let s = slotState.get(slot);
    if (s?.failedInstance !== v.id) {
      const failures = (s && s.revision === v.revision ? s.failures : 0) + 1;
      const retryAt = now + backoffDelay(failures, input.backoff);
      const reason = v.message || `${v.state}`;
      actions.push({ type: 'fail', slot, instance: v.id, revision: v.revision, failures, retryAt, reason });
      s = { slot, failures, revision: v.revision, retryAt, reason, failedInstance: v.id };
      slotState.set(slot, s);
    }
    // Only the failures of the revision it gets hold a slot back: after a rollback, the older template goes in at once.
    if (s.retryAt !== null && s.retryAt > now && s.revision === target) {
      blocked.set(slot, s.retryAt);
      wake(s.retryAt);
      continue;
    }
    actions.push({ type: 'delete', instance: v.id, slot, reason: 'failed' });
    if (!live.has(slot)) replacing.set(slot, { instance: v.name, reason: 'failed' });
  }
  // A slot waits out its backoff even when its failed replica is gone already.
  for (const s of slotState.values())
    if (s.slot < replicas && s.retryAt !== null && s.retryAt > now && s.revision === target && !live.has(s.slot)) {
      blocked.set(s.slot, s.retryAt);
      wake(s.retryAt);
    }

  let headroom = input.headroom;
  let waitingForQuota = 0;
  let emptySlots = 0;
  const create = (slot: number, revision = target) => {
    if (headroom <= 0) {
      waitingForQuota++;
      return false;
    }
    headroom--;
    if (!live.has(slot)) emptySlots--;
    const r = replacing.get(slot);
    actions.push({ type: 'create', slot, revision, ...(r ? { replacing: r } : {}) });
    const placeholder: ReplicaView = {
      id: '',
      name: '',
      slot,
      revision,
      state: 'pending',
      desiredState: 'running',
      readySince: null,
      restarting: false,
      message: '',
      host: null,
      createdAt: new Date(now).toISOString(),
      unreachableSince: null,
      evicting: false,
      unhealthy: false,
    };
    live.set(slot, [...(live.get(slot) ?? []), placeholder]);
    return true;
  };

  // Empty slots are filled with the target revision.
  for (let slot = 0; slot < replicas; slot++) if (!live.has(slot) && !blocked.has(slot)) create(slot);

  // The rollout, slot by slot, within maxSurge and maxUnavailable.
  const { maxSurge, maxUnavailable } = resolveStrategy(input.strategy, replicas);
  const all = () => [...live.values()].flat();
  let liveCount = all().length;
  let availableCount = all().filter(isAvailable).length;
  const minAvailable = replicas - maxUnavailable;
  // A slot still empty (in its backoff, or waiting for the quota) will be filled: surge leaves it room.
  // (Counted once here, then kept as replicas come and go: a plan of many replicas stays linear.)
  emptySlots = 0;
  for (let slot = 0; slot < replicas; slot++) if (!live.has(slot)) emptySlots++;
  const removeOld = (slot: number, old: ReplicaView): boolean => {
    // Taking away a replica that is not available costs no availability.
    const loss = isAvailable(old) ? 1 : 0;
    if (loss > 0 && availableCount - loss < minAvailable) return false;
    actions.push({ type: 'delete', instance: old.id, slot, reason: old.evicting ? 'drain' : 'rollout' });
    const rest = (live.get(slot) ?? []).filter(v => v !== old);
    if (rest.length > 0) live.set(slot, rest);
    else {
      live.delete(slot);
      emptySlots++;
    }
    availableCount -= loss;
    liveCount--;
    return true;
  };
  // Canaries: while not promoted, a rollout makes no more than `count` replicas of the new revision.
  const c = input.canary;
  const olderLive = () => all().some(v => v.revision !== target);
  const canaryLimit =
    c && !c.promoted && c.count > 0 && c.count < replicas && olderLive() ? c.count : Number.POSITIVE_INFINITY;
  let targetCount = all().filter(v => v.revision === target).length;
  // What replaces `old`: the target revision, but a replica moved off a draining
  // host keeps its revision while the rollout may not go on (paused, canaries waiting).
  const successorOf = (old: ReplicaView) =>
    old.evicting && old.revision !== target && (input.paused || targetCount >= canaryLimit) ? old.revision : target;
  const freshIn = (slot: number, old: ReplicaView) => {
    const revision = successorOf(old);
    return live.get(slot)?.find(v => v !== old && !v.evicting && (v.revision === target || v.revision === revision));
  };
  const takesOver = (slot: number, old: ReplicaView) => {
    const fresh = freshIn(slot, old);
    return fresh !== undefined && isAvailable(fresh);
  };
  // Replicas of an older revision (while the rollout may go on), and those on a draining host (always).
  const rolling = [...live.entries()].flatMap(([slot, vs]) =>
    vs.filter(v => v.evicting || (!input.paused && v.revision !== target)).map(old => ({ slot, old })),
  );
  // First the slots whose new replica can take over, then the others, unavailable old replicas first.
  rolling.sort(
    (a, b) =>
      Number(takesOver(b.slot, b.old)) - Number(takesOver(a.slot, a.old)) ||
      Number(isAvailable(a.old)) - Number(isAvailable(b.old)) ||
      a.slot - b.slot,
  );
  for (const { slot, old } of rolling) {
    const fresh = freshIn(slot, old);
    if (fresh) {
      if (isAvailable(fresh) || !isAvailable(old)) removeOld(slot, old);
      continue;
    }
    const revision = successorOf(old);
    // A move keeps the count of the target revision; a rollout step adds to it, up to the canaries.
    const adds = revision === target && old.revision !== target;
    // (A slot whose new replica failed waits out its backoff before the next one.)
    if ((adds && targetCount >= canaryLimit) || blocked.has(slot)) continue;
    const room = liveCount + emptySlots < replicas + maxSurge && headroom > 0;
    if (room ? create(slot, revision) : removeOld(slot, old) && create(slot, revision)) {
      liveCount++;
      if (adds) targetCount++;
    }
  }
  const canaries = all().filter(v => v.revision === target);
  const canaryWait = !input.paused && targetCount >= canaryLimit && olderLive();
  const canariesReady = canaryWait && canaries.length >= canaryLimit && canaries.every(isAvailable);

  // Availability that comes with time, and a slot's count cleared by a replica that lasted.
  for (const v of all()) if (v.readySince !== null && !isAvailable(v)) wake(v.readySince + minHealthyMs);
  for (const [slot, vs] of live) {
    const s = slotState.get(slot);
    if (!s || s.failures === 0 || ended.has(slot)) continue;
    const since = vs.find(v => v.revision === target)?.readySince ?? null;
    if (s.revision !== target || (since !== null && now - Math.min(since, now) >= input.backoff.resetMs))
      actions.push({ type: 'reset', slot });
    else if (since !== null) wake(since + input.backoff.resetMs);
  }

  const after = all();
  const updated = after.filter(v => v.revision === input.revision);
  const backoffSlots = [...blocked.entries()].sort(([a], [b]) => a - b);
  const messages: string[] = [];
  // Slots that failed alike are said once (a missing image fails every slot with the same long reason).
  const alike = new Map<string, { slots: number[]; waits: number[]; failures: number; reason: string }>();
  for (const [slot, at] of backoffSlots) {
    const s = slotState.get(slot);
    const failures = s?.failures ?? 0;
    const reason = s?.reason ?? 'failed';
    const key = `${failures}\n${reason}`;
    const g = alike.get(key) ?? alike.set(key, { slots: [], waits: [], failures, reason }).get(key)!;
    g.slots.push(slot);
    g.waits.push(Math.ceil((at - now) / 1000));
  }
  for (const g of alike.values()) {
    const times = `${g.failures} failure${g.failures === 1 ? '' : 's'}`;
    const low = Math.min(...g.waits);
    const high = Math.max(...g.waits);
    const wait = low === high ? `${low} s` : `${low} to ${high} s`;
    messages.push(
      g.slots.length === 1
        ? `slot ${g.slots[0]} waits ${wait} after ${times} (${g.reason})`
        : `slots ${g.slots.join(', ')} wait ${wait} after ${times} each (${g.reason})`,
    );
  }
  if (waitingForQuota > 0)
    messages.push(
      `${waitingForQuota} ${waitingForQuota === 1 ? 'replica waits' : 'replicas wait'} for the project's quota`,
    );
  const complete = after.length === replicas && updated.length === replicas && updated.every(isAvailable);
  // A rollout not complete by its deadline has failed; once complete, later trouble is only degraded.
  const p = input.progress;
  const overdue = p !== undefined && !p.completed && !complete && !input.paused && !canariesReady;
  const deadline = p ? p.startedAt + p.deadlineSeconds * 1000 : 0;
  if (overdue && now >= deadline) {
    const reason = `revision ${input.revision} was not available within ${p.deadlineSeconds} s (${updated.filter(isAvailable).length} of ${replicas} replicas)`;
    if (p.autoRollback && p.canRollBack)
      return {
        actions: [],
        status: { ...statusOf(after), phase: 'failed', message: `${reason}: rolled back` },
        wakeAt: now,
        rollback: true,
        promote: false,
      };
    messages.unshift(`${reason}: the rollout has failed`);
  } else if (overdue) wake(deadline);
  if (canariesReady && c?.auto)
    return {
      actions: [],
      status: {
        ...statusOf(after),
        phase: 'progressing',
        message: `the canaries of revision ${input.revision} are promoted`,
      },
      wakeAt: now,
      rollback: false,
      promote: true,
    };
  if (canariesReady)
    messages.unshift(
      `${canaries.length} canary replicas of revision ${input.revision} are available: waiting for a promotion`,
    );
  const phase: RolloutPhase = input.paused
    ? 'paused'
    : complete
      ? 'complete'
      : canariesReady
        ? 'awaiting-promotion'
        : overdue && now >= deadline
          ? 'failed'
          : backoffSlots.length > 0
            ? 'degraded'
            : 'progressing';
  return {
    actions,
    status: { ...statusOf(after), phase, message: messages.join('; ') },
    wakeAt,
    rollback: false,
    promote: false,
  };

  function statusOf(vs: ReplicaView[]): Omit<PlannedStatus, 'phase' | 'message'> {
    return {
      replicas: vs.length,
      updated: vs.filter(v => v.revision === input.revision).length,
      ready: vs.filter(v => v.readySince !== null).length,
      available: vs.filter(isAvailable).length,
    };
  }
}

export interface DeploymentsControllerOptions {
  /** How often the controller looks for deployments whose planned wake-up has come (ms). */
  tickMs?: number;
  /** Back-to-back passes start at least this far apart (ms), see the runner; none by default. */
  batchMs?: number;
  /** How often every deployment is planned again, whatever happened (ms). */
  fullResyncMs?: number;
  backoff?: Partial<BackoffPolicy>;
}

const wakeTypes: readonly EventType[] = [
  'deployment.created',
  'deployment.updated',
  'deployment.scaled',
  'instance.state',
  'instance.health',
  'instance.deleted',
  // a replica's host going silent, coming back or draining
  'host.state',
  'host.updated',
];

const ACTOR = 'deployments';

export function deploymentsController(store: Store, o: DeploymentsControllerOptions = {}): Controller {
  const backoff = { ...defaultBackoff, ...o.backoff };
  const fullMs = o.fullResyncMs ?? 30_000;
  /** deployment id -> when its plan asked to be made again */
  const wakes = new Map<string, number>();
  /** instance id -> its deployment, for the events of instances already gone */
  const owners = new Map<string, string>();
  const owned = new Map<string, Set<string>>();
  let lastFull: number | null = null;

  const remember = (deploymentId: string, instances: readonly string[]) => {
    for (const id of owned.get(deploymentId) ?? []) owners.delete(id);
    owned.set(deploymentId, new Set(instances));
    for (const id of instances) owners.set(id, deploymentId);
  };

  return {
    name: 'deployments',
    wakeOn: wakeTypes,
    resyncMs: o.tickMs ?? 1000,
    batchMs: o.batchMs ?? 0,
    async reconcile(pass: Pass) {
      try {
        const ids = new Set<string>();
        if (lastFull === null || (pass.resync && pass.now - lastFull >= fullMs)) {
          lastFull = pass.now;
          for (const id of await deploymentIds(store.db)) ids.add(id);
        }
        const instanceIds: string[] = [];
        const hostIds: string[] = [];
        for (const e of pass.events) {
          if (e.resource_type === 'deployment') ids.add(e.resource_id);
          else if (e.resource_type === 'host') hostIds.push(e.resource_id);
          else instanceIds.push(e.resource_id);
        }
        for (const id of await deploymentsOnHosts(store.db, hostIds)) ids.add(id);
        for (const [instance, deployment] of await deploymentsOfInstances(store.db, instanceIds)) {
          owners.set(instance, deployment);
          ids.add(deployment);
        }
        for (const id of instanceIds) {
          const d = owners.get(id);
          if (d) ids.add(d);
        }
        for (const [id, at] of wakes) if (at <= pass.now) ids.add(id);
        for (const id of ids) {
          const done = await store.write(ctx => reconcileOne(ctx, id, pass.now, backoff, pass.startedAt));
          wakes.delete(id);
          if (!done) {
            remember(id, []);
            owned.delete(id);
            continue;
          }
          remember(id, done.instances);
          if (done.wakeAt !== null) wakes.set(id, done.wakeAt);
        }
      } catch (err) {
        // The events this pass held are gone: the next pass looks at everything.
        lastFull = null;
        throw err;
      }
    },
  };
}

/** Replicas of `per` the project's quota can take beyond what it holds now. */
function headroomOf(p: ProjectRow, per: { vcpus: number; memoryMib: number; diskGib: number }): number {
  const room = (quota: number | null, used: number, each: number) =>
    quota === null || each === 0 ? Number.POSITIVE_INFINITY : Math.floor((quota - used) / each);
  return Math.max(
    0,
    Math.min(
      room(p.quota_instances, p.used_instances, 1),
      room(p.quota_vcpus, p.used_vcpus, per.vcpus),
      room(p.quota_memory_mib, p.used_memory_mib, per.memoryMib),
      room(p.quota_disk_gib, p.used_disk_gib, per.diskGib),
    ),
  );
}

function slotStateOf(s: DeploymentSlotRow): SlotState {
  return {
    slot: s.slot,
    failures: s.failures,
    revision: s.revision,
    retryAt: s.retry_at === null ? null : Date.parse(s.retry_at),
    reason: s.reason,
    failedInstance: s.failed_instance,
  };
}

/** The first of NAME-SLOT-HASH, NAME-SLOT-HASH-1, ... that no instance of the project has. */
async function freeName(ctx: WriteContext, d: DeploymentRow, slot: number, hash: string): Promise<string> {
  for (let from = 0; from < 100; from += 10) {
    const names = Array.from({ length: 10 }, (_, i) => replicaName(d.name, slot, hash, from + i));
    const taken = await takenNames(ctx.trx, d.project_id, names);
    const free = names.find(n => !taken.has(n));
    if (free) return free;
  }
  throw new Error(`no free name for slot ${slot} of deployment ${d.name}`);
}

/** Plans one deployment and carries the plan out; undefined when the deployment is gone. */
async function reconcileOne(
  ctx: WriteContext,
  id: string,
  now: number,
  backoff: BackoffPolicy,
  listeningSince: number,
): Promise<{ instances: string[]; wakeAt: number | null } | undefined> {
  const { trx, emit } = ctx;
  const d = await findDeployment(trx, id);
  if (!d) return undefined;
  const revisions = new Map<number, DeploymentRevisionRow>();
  const revision = async (n: number) => {
    let r = revisions.get(n);
    if (!r) {
      r = await findRevision(trx, id, n);
      if (!r) throw new Error(`deployment ${d.name} has no revision ${n}`);
      revisions.set(n, r);
    }
    return r;
  };
  const current = await revision(d.revision);
  const rows = await replicasOf(trx, id);
  const project = await getProjectById(trx, d.project_id);
  const template = JSON.parse(current.template) as InstanceTemplate;
  const strategy = fullStrategy(JSON.parse(d.strategy) as StrategyOut);
  // A replica of an older revision with the current one's template (a rollback copies it) already is what the current one wants.
  const hosts = await hostsLiveness(
    trx,
    rows.flatMap(r => (r.host_id ? [r.host_id] : [])),
  );
  const views: ReplicaView[] = [];
  for (const r of rows) {
    const v = replicaView(r, r.host_id ? hosts.get(r.host_id) : undefined, listeningSince);
    const same = v.revision > 0 && v.revision !== d.revision && (await revision(v.revision)).hash === current.hash;
    views.push(same ? { ...v, revision: d.revision } : v);
  }
  const plan = planDeployment({
    now,
    replicas: d.replicas,
    paused: d.paused === 1,
    revision: d.revision,
    strategy,
    instances: views,
    slots: (await slotsOf(trx, [id])).map(slotStateOf),
    headroom: headroomOf(project, resourcesOf(template)),
    backoff,
    lostGraceSeconds: strategy.lostGraceSeconds,
    progress: {
      startedAt: Date.parse(current.started_at ?? current.created_at),
      completed: current.completed_at !== null,
      deadlineSeconds: strategy.progressDeadlineSeconds,
      autoRollback: strategy.autoRollback,
      canRollBack: d.revision > 1 && current.rolled_back_from === null,
    },
    canary: {
      count: strategy.canary,
      promoted: current.promoted_at !== null,
      auto: strategy.canaryPromotion === 'auto',
    },
  });

  const common = { projectId: d.project_id, resourceType: 'deployment', resourceId: id, actor: ACTOR } as const;
  if (plan.rollback) {
    // The failure is said (phase and message), then the previous revision becomes current and is planned at once.
    const previous = await revision(d.revision - 1);
    const message = plan.status.message;
    await updateDeployment(trx, id, { phase: 'failed', message, updated_at: isoNow() });
    emit({ ...common, type: 'deployment.phase', data: { from: d.phase, to: 'failed', message } });
    await rollBackIn(ctx, { ...d, phase: 'failed', message }, previous, d.revision, ACTOR);
    return reconcileOne(ctx, id, now, backoff, listeningSince);
  }
  if (plan.promote) {
    await promoteIn(ctx, d, ACTOR, new Date(now).toISOString(), true);
    return reconcileOne(ctx, id, now, backoff, listeningSince);
  }

  const byId = new Map(rows.map(r => [r.id, r]));
  const created: string[] = [];
  let replaced = 0;
  let blocker = '';
  for (const a of plan.actions) {
    if (a.type === 'delete') {
      const row = byId.get(a.instance) ?? (await findInstance(trx, a.instance));
      if (row) await deleteInstanceIn(ctx, row, ACTOR);
    } else if (a.type === 'fail') {
      await putSlot(trx, {
        deployment_id: id,
        slot: a.slot,
        failures: a.failures,
        revision: a.revision,
        retry_at: new Date(a.retryAt).toISOString(),
        reason: a.reason,
        failed_instance: a.instance,
      });
      emit({
        ...common,
        type: 'deployment.replica-failed',
        data: {
          slot: a.slot,
          instance: byId.get(a.instance)?.name ?? a.instance,
          reason: a.reason,
          failures: a.failures,
          retryInSeconds: Math.ceil((a.retryAt - now) / 1000),
        },
      });
    } else if (a.type === 'reset') {
      await deleteSlot(trx, id, a.slot);
    } else if (!blocker) {
      const rev = await revision(a.revision);
      const spec = replicaSpec(d, rev, await freeName(ctx, d, a.slot, rev.hash));
      // What was fine when the spec was given may not be now (a group or a secret deleted since): said in the status.
      try {
        await resolveGroups(trx, d.project_id, spec.groups ?? []);
        await checkSecretRefs(trx, d.project_id, spec.env ?? {});
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        blocker = `cannot create replicas: ${err.message}`;
        continue;
      }
      const row = await insertNewInstance(ctx, d.project_id, spec, ACTOR, {
        deploymentId: id,
        revision: a.revision,
        slot: a.slot,
      });
      created.push(row.id);
      if (a.replacing) {
        replaced++;
        emit({
          ...common,
          type: 'deployment.replica-replaced',
          data: { slot: a.slot, instance: a.replacing.instance, replacement: row.name, reason: a.replacing.reason },
        });
      }
    }
  }

  const s = plan.status;
  const status = {
    observed_generation: d.generation,
    status_replicas: s.replicas,
    status_updated: s.updated,
    status_ready: s.ready,
    status_available: s.available,
    phase: blocker ? 'degraded' : s.phase,
    message: [blocker, s.message].filter(Boolean).join('; '),
    replacements: d.replacements + replaced,
  };
  if (status.phase === 'complete' && current.completed_at === null)
    await updateRevision(trx, id, d.revision, { completed_at: new Date(now).toISOString() });
  const changed = (Object.keys(status) as (keyof typeof status)[]).some(k => status[k] !== d[k]);
  if (changed) await updateDeployment(trx, id, { ...status, updated_at: isoNow() });
  if (status.phase !== d.phase)
    emit({ ...common, type: 'deployment.phase', data: { from: d.phase, to: status.phase, message: status.message } });
  return { instances: [...rows.map(r => r.id), ...created], wakeAt: plan.wakeAt };
}
