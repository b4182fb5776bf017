// The deployments controller's plan on a simulated world: unit cases, and a
// randomized run whose invariants must hold after every plan, whatever the
// world did in between (replicas starting, failing, lost, deletions finishing,
// the template and the replica count changed, time passing).
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { resolveStrategy } from '../model/deployments.ts';
import type { ReplicaView } from '../services/deployments.ts';
import { type Action, type BackoffPolicy, type PlanInput, planDeployment, type SlotState } from './deployments.ts';

const backoff: BackoffPolicy = { baseMs: 1000, maxMs: 16_000, resetMs: 60_000 };

/** A replica of the simulated world. */
const replica = (o: Partial<ReplicaView> & Pick<ReplicaView, 'id' | 'slot' | 'revision'>): ReplicaView => ({
  name: o.id,
  state: 'running',
  desiredState: 'running',
  readySince: 0,
  restarting: false,
  message: '',
  host: 'h',
  createdAt: new Date(0).toISOString(),
  unreachableSince: null,
  evicting: false,
  unhealthy: false,
  ...o,
});

const input = (o: Partial<PlanInput>): PlanInput => ({
  now: 100_000,
  replicas: 3,
  paused: false,
  revision: 1,
  strategy: { maxSurge: 1, maxUnavailable: 0, minHealthySeconds: 0 },
  instances: [],
  slots: [],
  headroom: Number.POSITIVE_INFINITY,
  backoff,
  ...o,
});

/** A live replica beside a failed one ('exit 1') whose slot counted `failures` until `retryAt`. */
const withFailed = (
  live: ReplicaView,
  f: Pick<ReplicaView, 'id' | 'slot' | 'revision'>,
  failures: number,
  retryAt: number,
): { instances: ReplicaView[]; slots: SlotState[] } => ({
  instances: [live, replica({ ...f, state: 'failed', readySince: null, message: 'exit 1' })],
  slots: [{ slot: f.slot, failures, revision: f.revision, retryAt, reason: 'exit 1', failedInstance: f.id }],
});

const of = <T extends Action['type']>(actions: Action[], type: T) =>
  actions.filter((a): a is Extract<Action, { type: T }> => a.type === type);

test('empty slots are filled, within the quota; the status says what waits', () => {
  const plan = planDeployment(input({ headroom: 2 }));
  assert.deepEqual(
    of(plan.actions, 'create').map(a => a.slot),
    [0, 1],
  );
  assert.equal(plan.status.message, "1 replica waits for the project's quota");
  assert.equal(plan.status.phase, 'progressing');
});

test('a running deployment with nothing to do plans nothing and is complete', () => {
  const instances = [0, 1, 2].map(slot => replica({ id: `i${slot}`, slot, revision: 1 }));
  const plan = planDeployment(input({ instances }));
  assert.deepEqual(plan.actions, []);
  assert.equal(plan.status.phase, 'complete');
  assert.equal(plan.wakeAt, null);
});

test('a failure is counted once; the slot is filled again when its backoff is over', () => {
  const failed = replica({ id: 'f', slot: 1, revision: 1, state: 'failed', readySince: null, message: 'exit 1' });
  const instances = [replica({ id: 'a', slot: 0, revision: 1 }), failed, replica({ id: 'c', slot: 2, revision: 1 })];
  const first = planDeployment(input({ instances }));
  assert.deepEqual(first.actions, [
    { type: 'fail', slot: 1, instance: 'f', revision: 1, failures: 1, retryAt: 101_000, reason: 'exit 1' },
  ]);
  assert.equal(first.wakeAt, 101_000);
  assert.equal(first.status.phase, 'degraded');
  const slots: SlotState[] = [
    { slot: 1, failures: 1, revision: 1, retryAt: 101_000, reason: 'exit 1', failedInstance: 'f' },
  ];
  assert.deepEqual(planDeployment(input({ instances, slots, now: 100_500 })).actions, []);
  const due = planDeployment(input({ instances, slots, now: 101_000 }));
  assert.deepEqual(due.actions, [
    { type: 'delete', instance: 'f', slot: 1, reason: 'failed' },
    { type: 'create', slot: 1, revision: 1, replacing: { instance: 'f', reason: 'failed' } },
  ]);
});

test('an unhealthy replica is counted as a failure, kept through its backoff, and replaced unless it recovered', () => {
  const sick = replica({ id: 's', slot: 0, revision: 1, readySince: null, unhealthy: true, message: 'check: 503' });
  const first = planDeployment(input({ replicas: 1, instances: [sick] }));
  assert.deepEqual(first.actions, [
    { type: 'fail', slot: 0, instance: 's', revision: 1, failures: 1, retryAt: 101_000, reason: 'check: 503' },
  ]);
  const slots: SlotState[] = [
    { slot: 0, failures: 1, revision: 1, retryAt: 101_000, reason: 'check: 503', failedInstance: 's' },
  ];
  assert.deepEqual(planDeployment(input({ replicas: 1, instances: [sick], slots, now: 100_500 })).actions, []);
  assert.deepEqual(planDeployment(input({ replicas: 1, instances: [sick], slots, now: 101_000 })).actions, [
    { type: 'delete', instance: 's', slot: 0, reason: 'failed' },
    { type: 'create', slot: 0, revision: 1, replacing: { instance: 's', reason: 'failed' } },
  ]);
  const recovered = { ...sick, unhealthy: false, readySince: 100_800, message: '' };
  assert.deepEqual(planDeployment(input({ replicas: 1, instances: [recovered], slots, now: 101_000 })).actions, []);
});

test('maxSurge 0 replaces in place, one unavailable at a time', () => {
  const instances = [0, 1, 2].map(slot => replica({ id: `i${slot}`, slot, revision: 1 }));
  const plan = planDeployment(
    input({ instances, revision: 2, strategy: { maxSurge: 0, maxUnavailable: 1, minHealthySeconds: 0 } }),
  );
  assert.deepEqual(plan.actions, [
    { type: 'delete', instance: 'i0', slot: 0, reason: 'rollout' },
    { type: 'create', slot: 0, revision: 2 },
  ]);
});

test('a paused deployment scales with the revision its replicas run and rolls nothing out', () => {
  const instances = [0, 1].map(slot => replica({ id: `i${slot}`, slot, revision: 1 }));
  const plan = planDeployment(input({ instances, revision: 2, paused: true }));
  assert.deepEqual(plan.actions, [{ type: 'create', slot: 2, revision: 1 }]);
  assert.equal(plan.status.phase, 'paused');
});

test('minHealthySeconds: a new replica takes over only once it has been ready that long', () => {
  const instances = [
    replica({ id: 'old', slot: 0, revision: 1 }),
    replica({ id: 'new', slot: 0, revision: 2, readySince: 99_000 }),
  ];
  const strategy = { maxSurge: 1, maxUnavailable: 0, minHealthySeconds: 5 };
  const early = planDeployment(input({ instances, revision: 2, replicas: 1, strategy }));
  assert.deepEqual(early.actions, []);
  assert.equal(early.wakeAt, 104_000);
  const later = planDeployment(input({ instances, revision: 2, replicas: 1, strategy, now: 104_000 }));
  assert.deepEqual(later.actions, [{ type: 'delete', instance: 'old', slot: 0, reason: 'rollout' }]);
  assert.equal(later.status.phase, 'complete');
});

test('maxUnavailable 0: an old replica stops only once a new one has been available minHealthySeconds', () => {
  const strategy = { maxSurge: 1, maxUnavailable: 0, minHealthySeconds: 10 };
  const olds = [0, 1, 2].map(slot => replica({ id: `o${slot}`, slot, revision: 1 }));
  // The first plan adds one new replica beside the old ones, and no more: replicas + maxSurge in all.
  const first = planDeployment(input({ instances: olds, revision: 2, strategy }));
  assert.deepEqual(first.actions, [{ type: 'create', slot: 0, revision: 2 }]);
  assert.equal(first.status.phase, 'progressing');
  // Running but not yet healthy (no readySince): nothing moves.
  const starting = replica({ id: 'n0', slot: 0, revision: 2, readySince: null });
  assert.deepEqual(planDeployment(input({ instances: [...olds, starting], revision: 2, strategy })).actions, []);
  // Ready for less than minHealthySeconds: still nothing, a wake-up when it will be available.
  const young = { ...starting, readySince: 95_000 };
  const waiting = planDeployment(input({ instances: [...olds, young], revision: 2, strategy }));
  assert.deepEqual(waiting.actions, []);
  assert.equal(waiting.wakeAt, 105_000);
  assert.equal(waiting.status.available, 3);
  // Available: its old replica goes, and the next slot gets its new one.
  const ready = planDeployment(input({ instances: [...olds, young], revision: 2, strategy, now: 105_000 }));
  assert.deepEqual(ready.actions, [
    { type: 'delete', instance: 'o0', slot: 0, reason: 'rollout' },
    { type: 'create', slot: 1, revision: 2 },
  ]);
});

test('maxUnavailable: an old replica is taken away only while enough stay available', () => {
  const strategy = { maxSurge: 0, maxUnavailable: 1, minHealthySeconds: 0 };
  // One old replica is not ready: it is replaced first, and no available one goes with it.
  const instances = [
    replica({ id: 'o0', slot: 0, revision: 1 }),
    replica({ id: 'o1', slot: 1, revision: 1, readySince: null }),
    replica({ id: 'o2', slot: 2, revision: 1 }),
  ];
  const plan = planDeployment(input({ instances, revision: 2, strategy }));
  assert.deepEqual(plan.actions, [
    { type: 'delete', instance: 'o1', slot: 1, reason: 'rollout' },
    { type: 'create', slot: 1, revision: 2 },
  ]);
  assert.equal(plan.status.available, 2);
  // With one new replica still starting, the two available old ones both stay.
  const next = [instances[0]!, replica({ id: 'n1', slot: 1, revision: 2, readySince: null }), instances[2]!];
  assert.deepEqual(planDeployment(input({ instances: next, revision: 2, strategy })).actions, []);
});

/** Slot 0: a revision 1 replica running beside a failed one ('f') of revision 2. */
const oldBesideFailed = (failures: number, retryAt: number) =>
  withFailed(replica({ id: 'o0', slot: 0, revision: 1 }), { id: 'f', slot: 0, revision: 2 }, failures, retryAt);

test("a failed replica of another revision beside the target's live one goes at once, without a count", () => {
  const { instances, slots } = oldBesideFailed(3, 200_000);
  const plan = planDeployment(input({ instances, slots, replicas: 1, revision: 1 }));
  assert.deepEqual(plan.actions, [{ type: 'delete', instance: 'f', slot: 0, reason: 'failed' }]);
  assert.equal(plan.status.phase, 'complete');
  // Its count, of another revision, is forgotten next.
  const next = planDeployment(input({ instances: [instances[0]!], slots, replicas: 1, revision: 1 }));
  assert.deepEqual(next.actions, [{ type: 'reset', slot: 0 }]);
});

test('a rolling slot whose new replica failed waits out its backoff before the next one', () => {
  const { instances, slots } = oldBesideFailed(1, 101_000);
  const waiting = planDeployment(input({ instances, slots, replicas: 1, revision: 2 }));
  assert.deepEqual(waiting.actions, []);
  assert.equal(waiting.status.phase, 'degraded');
  const due = planDeployment(input({ instances, slots, replicas: 1, revision: 2, now: 101_000 }));
  assert.deepEqual(due.actions, [
    { type: 'delete', instance: 'f', slot: 0, reason: 'failed' },
    { type: 'create', slot: 0, revision: 2 },
  ]);
});

test('slots that failed alike are said once in the status, with the range of their waits', () => {
  const pull = 'pulling 127.0.0.1:5000/none:1 failed: manifest unknown';
  const slots: SlotState[] = [
    { slot: 0, failures: 1, revision: 1, retryAt: 102_000, reason: pull, failedInstance: 'a' },
    { slot: 1, failures: 1, revision: 1, retryAt: 104_000, reason: pull, failedInstance: 'b' },
    { slot: 2, failures: 2, revision: 1, retryAt: 103_000, reason: 'exit 1', failedInstance: 'c' },
    { slot: 3, failures: 1, revision: 1, retryAt: 102_000, reason: pull, failedInstance: 'd' },
  ];
  const plan = planDeployment(input({ slots, replicas: 4 }));
  assert.deepEqual(plan.actions, []);
  assert.equal(
    plan.status.message,
    `slots 0, 1, 3 wait 2 to 4 s after 1 failure each (${pull}); slot 2 waits 3 s after 2 failures (exit 1)`,
  );
});

test("another revision's backoff does not hold a slot back: after a rollback its replica goes in at once", () => {
  // Slot 0 gave its old replica up for revision 2, whose replicas failed 4 times; revision 3 (a rollback) is current.
  const slots: SlotState[] = [
    { slot: 0, failures: 4, revision: 2, retryAt: 108_000, reason: 'exit 1', failedInstance: 'f' },
  ];
  const other = replica({ id: 'o1', slot: 1, revision: 3 });
  const failed = replica({ id: 'f', slot: 0, revision: 2, state: 'failed', readySince: null, message: 'exit 1' });
  const beside = planDeployment(input({ instances: [failed, other], slots, replicas: 2, revision: 3 }));
  assert.deepEqual(beside.actions, [
    { type: 'delete', instance: 'f', slot: 0, reason: 'failed' },
    { type: 'create', slot: 0, revision: 3, replacing: { instance: 'f', reason: 'failed' } },
  ]);
  assert.equal(beside.status.phase, 'progressing');
  // The same once the failed replica is gone.
  const gone = planDeployment(input({ instances: [other], slots, replicas: 2, revision: 3 }));
  assert.deepEqual(gone.actions, [
    { type: 'create', slot: 0, revision: 3 },
    { type: 'reset', slot: 0 },
  ]);
  // Failures of the revision the slot gets still hold it back.
  const own = planDeployment(input({ instances: [{ ...other, revision: 2 }], slots, replicas: 2, revision: 2 }));
  assert.equal(of(own.actions, 'create').length, 0);
  assert.equal(own.status.phase, 'degraded');
});

test('progress deadline: a revision not available in time fails, or rolls back with autoRollback', () => {
  const instances = [
    replica({ id: 'o0', slot: 0, revision: 1 }),
    replica({ id: 'o1', slot: 1, revision: 1 }),
    replica({ id: 'n0', slot: 0, revision: 2, readySince: null }),
  ];
  const progress = { startedAt: 40_000, completed: false, deadlineSeconds: 60, autoRollback: false, canRollBack: true };
  const base = input({ instances, replicas: 2, revision: 2, now: 99_999, progress });
  const early = planDeployment(base);
  assert.equal(early.status.phase, 'progressing');
  assert.equal(early.wakeAt, 100_000);
  const late = planDeployment({ ...base, now: 100_000 });
  assert.equal(late.status.phase, 'failed');
  assert.equal(late.rollback, false);
  assert.match(
    late.status.message,
    /^revision 2 was not available within 60 s \(0 of 2 replicas\): the rollout has failed/,
  );
  const back = planDeployment({ ...base, now: 100_000, progress: { ...progress, autoRollback: true } });
  assert.equal(back.rollback, true);
  assert.deepEqual(back.actions, []);
  assert.equal(back.status.phase, 'failed');
  // No going back from an automatic rollback, nor from the first revision: it stays failed.
  const noWay = planDeployment({
    ...base,
    now: 100_000,
    progress: { ...progress, autoRollback: true, canRollBack: false },
  });
  assert.equal(noWay.rollback, false);
  assert.equal(noWay.status.phase, 'failed');
  // A revision that completed once is past its deadline: a failure later only degrades it.
  const done = planDeployment({ ...base, now: 200_000, progress: { ...progress, completed: true } });
  assert.equal(done.status.phase, 'progressing');
  // Paused, the deadline does not apply.
  assert.equal(planDeployment({ ...base, now: 200_000, paused: true }).status.phase, 'paused');
});

test('canaries: the first ones of a new revision wait for a promotion, or promote themselves', () => {
  const olds = [0, 1, 2].map(slot => replica({ id: `o${slot}`, slot, revision: 1 }));
  const canary = { count: 1, promoted: false, auto: false };
  const base = input({ revision: 2, canary });
  assert.deepEqual(planDeployment({ ...base, instances: olds }).actions, [{ type: 'create', slot: 0, revision: 2 }]);
  // One canary starting: nothing more is made, the rollout goes on.
  const starting = [replica({ id: 'n0', slot: 0, revision: 2, readySince: null }), ...olds.slice(1)];
  const wait = planDeployment({ ...base, instances: starting });
  assert.deepEqual(wait.actions, []);
  assert.equal(wait.status.phase, 'progressing');
  // The canary available: the rollout waits for its promotion.
  const ready = [replica({ id: 'n0', slot: 0, revision: 2 }), ...olds.slice(1)];
  const awaiting = planDeployment({ ...base, instances: ready });
  assert.deepEqual(awaiting.actions, []);
  assert.equal(awaiting.status.phase, 'awaiting-promotion');
  assert.match(awaiting.status.message, /^1 canary replicas of revision 2 are available: waiting for a promotion/);
  // Waiting for a promotion is no missed deadline.
  const progress = { startedAt: 0, completed: false, deadlineSeconds: 1, autoRollback: true, canRollBack: true };
  assert.equal(planDeployment({ ...base, instances: ready, progress }).status.phase, 'awaiting-promotion');
  // Promoted, the next slot is rolled.
  const promoted = planDeployment({ ...base, instances: ready, canary: { ...canary, promoted: true } });
  assert.deepEqual(promoted.actions, [{ type: 'create', slot: 1, revision: 2 }]);
  // Automatic promotion: once the canary is available, the plan promotes it.
  const auto = planDeployment({ ...base, instances: ready, canary: { ...canary, auto: true } });
  assert.equal(auto.promote, true);
  assert.deepEqual(auto.actions, []);
  assert.equal(planDeployment({ ...base, instances: starting, canary: { ...canary, auto: true } }).promote, false);
  // A first revision has no canaries: nothing older runs.
  assert.equal(of(planDeployment(input({ canary })).actions, 'create').length, 3);
});

test('paused: old replicas are not replaced, but a failed one is, and the deadline waits', () => {
  const { instances, slots } = withFailed(
    replica({ id: 'o0', slot: 0, revision: 1 }),
    { id: 'f1', slot: 1, revision: 1 },
    1,
    1000,
  );
  const progress = { startedAt: 0, completed: false, deadlineSeconds: 1, autoRollback: true, canRollBack: true };
  const plan = planDeployment(input({ instances, slots, replicas: 2, revision: 2, paused: true, progress }));
  assert.deepEqual(plan.actions, [
    { type: 'delete', instance: 'f1', slot: 1, reason: 'failed' },
    { type: 'create', slot: 1, revision: 1, replacing: { instance: 'f1', reason: 'failed' } },
  ]);
  assert.equal(plan.status.phase, 'paused');
  assert.equal(plan.rollback, false);
});

// ---- the randomized run -----------------------------------------------------

type Op =
  | { op: 'start'; pick: number }
  | { op: 'fail'; pick: number }
  /** a running replica's health check fails, or passes again */
  | { op: 'sick'; pick: number }
  | { op: 'recover'; pick: number }
  | { op: 'gone'; pick: number }
  | { op: 'tick'; ms: number }
  | { op: 'template' }
  | { op: 'scale'; replicas: number }
  | { op: 'quota'; headroom: number }
  | { op: 'pause' }
  /** a host stops heartbeating */
  | { op: 'silence'; host: number }
  /** a silent host is down: what was active on it is lost */
  | { op: 'down'; host: number }
  /** a silent or draining host is ready again, its agent reporting what runs there */
  | { op: 'back'; host: number }
  | { op: 'drain'; host: number };

const HOSTS = 3;
const host = fc.integer({ min: 0, max: HOSTS - 1 });
const ops: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('start' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('fail' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('sick' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('recover' as const), pick: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('gone' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 20_000 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'template' as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('scale' as const), replicas: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('quota' as const), headroom: fc.integer({ min: 0, max: 8 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'pause' as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('silence' as const), host }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('down' as const), host }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('back' as const), host }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('drain' as const), host }) },
);

interface SimHost {
  state: 'ready' | 'silent' | 'draining';
  /** the last heartbeat, while silent */
  since: number;
}

class World {
  now = 1_000_000;
  instances: ReplicaView[] = [];
  slots = new Map<number, SlotState>();
  hosts: SimHost[] = Array.from({ length: HOSTS }, () => ({ state: 'ready', since: 0 }));
  revision = 1;
  replicas: number;
  paused = false;
  /** the quota's room beyond what the instances hold */
  quota = Number.POSITIVE_INFINITY;
  /** the current revision's canaries, promoted by themselves */
  canaries: number;
  promoted = false;
  private next = 0;
  readonly strategy: PlanInput['strategy'];
  readonly graceSeconds: number;

  constructor(replicas: number, strategy: PlanInput['strategy'], canaries = 0, graceSeconds = 0) {
    this.replicas = replicas;
    this.strategy = strategy;
    this.canaries = canaries;
    this.graceSeconds = graceSeconds;
  }

  hostOf(v: ReplicaView): SimHost | undefined {
    return v.host === null ? undefined : this.hosts[Number(v.host.slice(1))];
  }

  /** The replicas as the controller reads them: their hosts' liveness in them, as replicaView puts it. */
  views(): ReplicaView[] {
    return this.instances.map(v => {
      const h = this.hostOf(v);
      const unreachableSince = h?.state === 'silent' ? h.since : null;
      return {
        ...v,
        unreachableSince,
        readySince: unreachableSince === null ? v.readySince : null,
        evicting: h?.state === 'draining',
        unhealthy: unreachableSince === null && v.unhealthy,
      };
    });
  }

  input(): PlanInput {
    return {
      now: this.now,
      replicas: this.replicas,
      paused: this.paused,
      revision: this.revision,
      strategy: this.strategy,
      instances: this.views(),
      slots: [...this.slots.values()],
      headroom: Math.max(0, this.quota - this.instances.length),
      backoff,
      canary: { count: this.canaries, promoted: this.promoted, auto: true },
      lostGraceSeconds: this.graceSeconds,
    };
  }

  /** Carries out a plan as the executor and the instance service would. */
  apply(actions: readonly Action[]): void {
    for (const a of actions) {
      if (a.type === 'create') {
        const id = `r${++this.next}`;
        this.instances.push(
          replica({
            id,
            slot: a.slot,
            revision: a.revision,
            state: 'pending',
            readySince: null,
            host: null,
            createdAt: new Date(this.now).toISOString(),
          }),
        );
      } else if (a.type === 'delete') {
        const i = this.instances.findIndex(v => v.id === a.instance);
        assert.ok(i >= 0, `the plan deletes ${a.instance}, which exists`);
        const v = this.instances[i]!;
        if (v.state === 'pending') this.instances.splice(i, 1);
        else this.instances[i] = { ...v, state: 'deleting', desiredState: 'deleted', readySince: null };
      } else if (a.type === 'fail') {
        this.slots.set(a.slot, {
          slot: a.slot,
          failures: a.failures,
          revision: a.revision,
          retryAt: a.retryAt,
          reason: a.reason,
          failedInstance: a.instance,
        });
      } else {
        this.slots.delete(a.slot);
      }
    }
  }

  /** What the hosts do meanwhile. */
  happen(o: Op): void {
    const pickFrom = (states: string[], pick: number) => {
      const c = this.instances.filter(v => states.includes(v.state));
      return c.length === 0 ? undefined : c[pick % c.length];
    };
    const set = (v: ReplicaView, patch: Partial<ReplicaView>) => {
      this.instances = this.instances.map(x => (x === v ? { ...x, ...patch } : x));
    };
    const onHost = (n: number) => this.instances.filter(v => v.host === `h${n}`);
    if (o.op === 'start') {
      // The scheduler places on ready hosts only.
      const ready = this.hosts.flatMap((h, n) => (h.state === 'ready' ? [`h${n}`] : []));
      const v = pickFrom(['pending'], o.pick);
      if (v && ready.length > 0)
        set(v, { state: 'running', readySince: this.now, host: ready[o.pick % ready.length]! });
    } else if (o.op === 'fail') {
      const v = pickFrom(['running', 'pending'], o.pick);
      if (v && this.hostOf(v)?.state !== 'silent') set(v, { state: 'failed', readySince: null, message: 'exited 1' });
    } else if (o.op === 'sick') {
      const v = pickFrom(['running'], o.pick);
      if (v && !v.unhealthy) set(v, { unhealthy: true, readySince: null, message: 'health check failing' });
    } else if (o.op === 'recover') {
      const sick = this.instances.filter(x => x.unhealthy);
      const v = sick[o.pick % Math.max(1, sick.length)];
      if (v) set(v, { unhealthy: false, readySince: this.now, message: '' });
    } else if (o.op === 'gone') {
      // A deletion finishes when its host's agent carries it out (or the instance held no host).
      const going = this.instances.filter(v => v.state === 'deleting' && this.hostOf(v)?.state !== 'silent');
      const v = going[o.pick % Math.max(1, going.length)];
      if (v) this.instances = this.instances.filter(x => x !== v);
    } else if (o.op === 'tick') this.now += o.ms;
    else if (o.op === 'template') {
      this.revision++;
      this.promoted = false;
    } else if (o.op === 'scale') this.replicas = o.replicas;
    else if (o.op === 'quota') this.quota = o.headroom;
    else if (o.op === 'pause') this.paused = !this.paused;
    else if (o.op === 'silence') {
      if (this.hosts[o.host]!.state !== 'silent') this.hosts[o.host] = { state: 'silent', since: this.now };
    } else if (o.op === 'down') {
      if (this.hosts[o.host]!.state !== 'silent') return;
      for (const v of onHost(o.host)) if (v.state === 'running') set(v, { state: 'lost', readySince: null });
    } else if (o.op === 'back') {
      if (this.hosts[o.host]!.state === 'ready') return;
      this.hosts[o.host] = { state: 'ready', since: 0 };
      // Its agent: the replicas replaced meanwhile are removed first (fenced), the others report running.
      this.instances = this.instances.filter(v => !(v.host === `h${o.host}` && v.state === 'deleting'));
      for (const v of onHost(o.host)) if (v.state === 'lost') set(v, { state: 'running', readySince: this.now });
    } else if (this.hosts[o.host]!.state === 'ready') this.hosts[o.host] = { state: 'draining', since: 0 };
  }
}

/** Holds its slot: to run, neither going away nor ended; on any host, heard from or not. */
const claims = (v: ReplicaView) =>
  v.desiredState === 'running' && !['deleting', 'deleted', 'failed', 'stopped'].includes(v.state);

function checkInvariants(before: World, plan: ReturnType<typeof planDeployment>, after: World): void {
  const { maxSurge, maxUnavailable } = resolveStrategy(before.strategy, before.replicas);
  const isLive = (w: World) => (v: ReplicaView) => claims(v) && v.state !== 'lost' && w.hostOf(v)?.state !== 'silent';
  const liveBefore = before.instances.filter(isLive(before));
  const liveAfter = after.instances.filter(isLive(after));
  const creates = of(plan.actions, 'create');
  checkCopies(after);
  // Creations only in the slots there are, within the quota's room.
  for (const c of creates) assert.ok(c.slot < before.replicas, `creates slot ${c.slot} of ${before.replicas}`);
  assert.ok(creates.length <= before.input().headroom, 'creations stay within the quota');
  // No more live than replicas + maxSurge, unless there were already.
  assert.ok(
    liveAfter.length <= Math.max(liveBefore.length, before.replicas + maxSurge),
    `live ${liveBefore.length} -> ${liveAfter.length}, replicas ${before.replicas} + surge ${maxSurge}`,
  );
  // The rollout (and a drain) takes no available replica away below replicas - maxUnavailable.
  const healthyMs = before.strategy.minHealthySeconds * 1000;
  const views = (w: World) => new Map(w.views().map(v => [v.id, v]));
  const available = (w: World) =>
    [...views(w).values()].filter(v => claims(v) && v.readySince !== null && before.now - v.readySince >= healthyMs)
      .length;
  // (What goes for other reasons, scaled down above all, is not the rollout's to keep.)
  const deletes = of(plan.actions, 'delete');
  const moving = new Set<string>(['rollout', 'drain']);
  const otherwise = new Set(deletes.filter(d => !moving.has(d.reason)).map(d => d.instance));
  const kept = Object.assign(clone(before), { instances: before.instances.filter(v => !otherwise.has(v.id)) });
  if (deletes.some(d => moving.has(d.reason)))
    assert.ok(
      available(after) >= Math.min(available(kept), before.replicas - maxUnavailable),
      'availability holds through a rollout',
    );
  // Outside failures, the controller's own deletions of available replicas never take availability below replicas - maxUnavailable.
  const before_ = views(before);
  const movedAway = deletes.filter(d => moving.has(d.reason)).map(d => before_.get(d.instance));
  if (movedAway.some(v => v && v.readySince !== null && before.now - v.readySince >= healthyMs))
    assert.ok(
      available(after) >= before.replicas - maxUnavailable,
      `an available replica is replaced only while ${before.replicas - maxUnavailable} stay available (now ${available(after)})`,
    );
  // Every slot at or beyond the replica count is emptied.
  for (const v of liveAfter) assert.ok(v.slot < before.replicas, `slot ${v.slot} is beyond ${before.replicas}`);
  // A replica unheard of is let go only after the grace, and its successor made in the same plan (quota allowing).
  for (const d of deletes.filter(x => x.reason === 'lost')) {
    const v = before_.get(d.instance)!;
    assert.ok(v.unreachableSince !== null, `${v.id} deleted as lost while its host answers`);
    assert.ok(before.now - v.unreachableSince >= before.graceSeconds * 1000, `${v.id} replaced within its grace`);
    const inBackoff = (before.slots.get(d.slot)?.retryAt ?? 0) > before.now;
    if (d.slot < before.replicas && before.input().headroom >= before.replicas && !inBackoff)
      assert.ok(
        after.instances.some(x => x.slot === d.slot && claims(x) && after.hostOf(x)?.state !== 'silent'),
        `slot ${d.slot} of lost ${v.id} is filled again at once`,
      );
  }
}

/**
 * Never two copies of one slot and revision: a replica whose host went silent
 * is let go before its successor is made, and one leaving a draining host has
 * at most one successor beside it.
 */
function checkCopies(w: World): void {
  const keys = w.views().flatMap(v => (claims(v) ? [`${v.slot}/${v.revision}${v.evicting ? ' (moving)' : ''}`] : []));
  assert.equal(new Set(keys).size, keys.length, `one copy per slot and revision: ${keys.join(' ')}`);
}

const clone = (w: World): World =>
  Object.assign(Object.create(World.prototype) as World, w, {
    slots: new Map(w.slots),
    instances: [...w.instances],
    hosts: w.hosts.map(h => ({ ...h })),
  });

/**
 * One run of the simulated world: the plan made after each of `run`'s events,
 * the invariants checked after each plan, then a calm world that must converge.
 */
function runWorld(
  replicas: number,
  s: PlanInput['strategy'],
  run: readonly Op[],
  canaries: number,
  grace: number,
): void {
  const world = new World(replicas, s, canaries, grace);
  const step = () => {
    const before = clone(world);
    let plan = planDeployment(world.input());
    // As the executor does: a promotion is recorded, and the plan made again at once.
    if (plan.promote) {
      world.promoted = true;
      before.promoted = true;
      plan = planDeployment(world.input());
    }
    world.apply(plan.actions);
    checkInvariants(before, plan, world);
    return plan;
  };
  for (const o of run) {
    step();
    // A host back from silence fences: no second copy appears. (A drain
    // called off, or a draining host falling silent, leaves a moved
    // replica beside its successor until the next plan.)
    const fencing = o.op === 'back' && world.hosts[o.host]!.state === 'silent';
    world.happen(o);
    if (fencing) checkCopies(world);
  }
  // A calm world: hosts still silent stay away but one is ready (back as its
  // agent comes back: fencing, and its lost replicas reported running),
  // everything starts, deletions finish, the quota allows, time passes until
  // the plan asks for nothing more (no wake-up either: a backoff's end, say).
  world.quota = Number.POSITIVE_INFINITY;
  world.paused = false;
  if (!world.hosts.some(h => h.state === 'ready')) world.happen({ op: 'back', host: 0 });
  let plan = step();
  for (
    let i = 0;
    i < 200 && (plan.actions.some(a => a.type !== 'reset') || plan.status.phase !== 'complete' || plan.wakeAt !== null);
    i++
  ) {
    for (const v of world.instances) {
      if (v.state === 'pending')
        world.happen({ op: 'start', pick: world.instances.filter(x => x.state === 'pending').indexOf(v) });
    }
    world.instances = world.instances.filter(v => v.state !== 'deleting');
    world.now += 20_000;
    plan = step();
  }
  assert.equal(plan.status.phase, 'complete', plan.status.message);
  const live = world.instances.filter(v => claims(v) && world.hostOf(v)?.state !== 'silent');
  assert.deepEqual(
    live.map(v => [v.slot, v.revision]).sort((a, b) => a[0]! - b[0]!),
    Array.from({ length: world.replicas }, (_, slot) => [slot, world.revision]),
  );
  // Draining hosts end empty (but for what their agents are removing).
  for (const v of world.instances.filter(claims))
    assert.notEqual(world.hostOf(v)?.state, 'draining', `${v.id} is still on a draining host`);
}

test('randomized: after every plan the invariants hold, and a calm world converges', () => {
  const strategy = fc.record({
    maxSurge: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom('0%', '25%', '50%', '100%')),
    maxUnavailable: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom('0%', '25%', '50%')),
    minHealthySeconds: fc.integer({ min: 0, max: 10 }),
  });
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 6 }),
      strategy,
      fc.array(ops, { maxLength: 120 }),
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 30 }),
      runWorld,
    ),
    { numRuns: Number(process.env.STRATA_PROPERTY_RUNS ?? 500) },
  );
});

test('randomized runs that once failed', () => {
  // Canaries promoted by themselves while a scale-down is due: the executor plans again at once.
  runWorld(
    3,
    { maxSurge: 0, maxUnavailable: '0%', minHealthySeconds: 1 },
    [
      { op: 'template' },
      { op: 'start', pick: 69279428 },
      { op: 'scale', replicas: 4 },
      { op: 'tick', ms: 1000 },
      { op: 'scale', replicas: 2 },
    ],
    1,
    0,
  );
  // A replica leaving a draining host turns unhealthy beside its successor.
  runWorld(
    1,
    { maxSurge: '100%', maxUnavailable: '0%', minHealthySeconds: 0 },
    [
      { op: 'start', pick: 475671079 },
      { op: 'drain', host: 1 },
      { op: 'sick', pick: 0 },
      { op: 'start', pick: 0 },
    ],
    0,
    0,
  );
  // The calm world's one ready host held a replica lost with it: its agent reports it running again.
  runWorld(
    1,
    { maxSurge: 0, maxUnavailable: 0, minHealthySeconds: 0 },
    [
      { op: 'start', pick: 0 },
      { op: 'silence', host: 0 },
      { op: 'silence', host: 1 },
      { op: 'drain', host: 2 },
      { op: 'down', host: 0 },
    ],
    0,
    1,
  );
  // An unhealthy replica that was leaving a draining host, the drain called off.
  runWorld(
    1,
    { maxSurge: '50%', maxUnavailable: '0%', minHealthySeconds: 0 },
    [
      { op: 'start', pick: 0 },
      { op: 'drain', host: 0 },
      { op: 'sick', pick: 0 },
      { op: 'back', host: 0 },
    ],
    0,
    0,
  );
});
