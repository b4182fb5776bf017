// One runner for every controller. A controller names the event types that
// wake it, how often it is resynced, and one `reconcile` function that brings
// what is stored toward what is wanted. The runner's rules:
// - Wake-ups coalesce: the events that arrive before a pass starts, or while
//   one runs, are handed to one next pass together.
// - A controller's passes never overlap; different controllers run side by side.
// - Every `resyncMs` a controller gets a full pass (`resync: true`), so a missed
//   or unfit event delays work by one interval at most; its first pass is one.
// - A pass that throws is logged; the runner goes on, and the controller's
//   next pass (at the next wake or resync) is a full one, since the events the
//   failed pass held are gone.
// - A controller with a `batchMs` that has more to do when a pass ends starts
//   the next pass no sooner than `batchMs` after the last one started, so
//   that under a steady stream of events it plans for many at once rather
//   than for each trickle; a wake-up after a quiet spell still starts a pass
//   at once. (Kubernetes' endpoint and job controllers have such a batch
//   period.) The wait is real time: it is about the CPU a pass costs.
// - `stop` ends the timers and the subscription and waits for running passes.
// Time comes from a `Clock`, so tests drive resyncs and read `now` explicitly.
// Each controller's passes are counted (`stats`): their number, their time
// from start to end, and the CPU of the writes they made (a controller reads,
// plans and writes inside its writes; the store runs each write alone, so
// that CPU is the controller's own, where a pass's elapsed time also holds
// whatever the process did while the pass waited).
import { performance } from 'node:perf_hooks';
import { chargeTo, type CpuTally } from '../lib/cpu-account.ts';
import type { EventType } from '../model/events.ts';
import type { StoredEvent } from '../store/store.ts';

export interface Pass {
  /** The events that woke this pass, in commit order (only the types the controller wakes on). */
  events: readonly StoredEvent[];
  /** A full pass: look at everything, not only at what the events name. */
  resync: boolean;
  /** The runner's clock when the pass started, in ms since the epoch. */
  now: number;
  /**
   * The runner's clock when it started: since when this server has been
   * running its controllers (and taking heartbeats), in ms since the epoch.
   */
  startedAt: number;
}

export interface Controller {
  readonly name: string;
  readonly wakeOn: readonly EventType[];
  readonly resyncMs: number;
  /** Back-to-back passes start at least this far apart (ms); none by default. */
  readonly batchMs?: number;
  reconcile(pass: Pass): Promise<void>;
}

export interface Clock {
  now(): number;
  /** Calls `fn` every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};

export interface ControllerStats {
  passes: number;
  /** the passes' time from start to end, in ms */
  busyMs: number;
  /** CPU (user + system) of the writes the passes made, in ms */
  writeCpuMs: number;
}

export interface RunnerLog {
  error(obj: object, msg: string): void;
}

export interface RunnerOptions {
  /** Subscribes to committed events; returns the unsubscribe function. */
  subscribe(listener: (event: StoredEvent) => void): () => void;
  log: RunnerLog;
  clock?: Clock;
  /** Waits out a batch period (ms); a timer by default. */
  sleep?: (ms: number) => Promise<void>;
}

interface Slot {
  controller: Controller;
  wakeOn: ReadonlySet<string>;
  events: StoredEvent[];
  /** a full pass is wanted and starts one */
  resyncDue: boolean;
  /** the next pass must be full (a pass failed), but this alone starts none */
  owesFull: boolean;
  scheduled: boolean;
  running: Promise<void> | null;
  passes: number;
  busyMs: number;
  cpu: CpuTally;
}

export class Runner {
  private readonly slots: Slot[] = [];
  private readonly clock: Clock;
  private readonly o: RunnerOptions;
  private readonly stops: (() => void)[] = [];
  private state: 'new' | 'started' | 'stopped' = 'new';
  private startedAt = 0;

  private readonly sleep: (ms: number) => Promise<void>;

  constructor(o: RunnerOptions) {
    this.o = o;
    this.clock = o.clock ?? systemClock;
    this.sleep = o.sleep ?? (ms => new Promise(r => setTimeout(r, ms)));
  }

  add(controller: Controller): this {
    if (this.state !== 'new') throw new Error('controllers are added before the runner starts');
    if (this.slots.some(s => s.controller.name === controller.name))
      throw new Error(`controller ${controller.name} is added twice`);
    this.slots.push({
      controller,
      wakeOn: new Set(controller.wakeOn),
      events: [],
      resyncDue: true,
      owesFull: false,
      scheduled: false,
      running: null,
      passes: 0,
      busyMs: 0,
      cpu: { us: 0 },
    });
    return this;
  }

  /** Subscribes, starts the resync timers and gives every controller its first (full) pass. */
  start(): void {
    if (this.state !== 'new') throw new Error('the runner starts once');
    this.state = 'started';
    this.startedAt = this.clock.now();
    this.stops.push(this.o.subscribe(e => this.deliver(e)));
    for (const slot of this.slots) {
      this.stops.push(
        this.clock.every(slot.controller.resyncMs, () => {
          slot.resyncDue = true;
          this.schedule(slot);
        }),
      );
      this.schedule(slot);
    }
  }

  /** Resolves once no controller has a pass running or waiting. */
  async idle(): Promise<void> {
    for (;;) {
      const busy = this.slots.filter(s => s.scheduled || s.running);
      if (busy.length === 0) return;
      await Promise.all(busy.map(s => s.running ?? new Promise<void>(r => setImmediate(r))));
    }
  }

  /** Each controller's passes so far, by name. */
  stats(): Record<string, ControllerStats> {
    return Object.fromEntries(
      this.slots.map(s => [
        s.controller.name,
        { passes: s.passes, busyMs: s.busyMs, writeCpuMs: s.cpu.us / 1000 } satisfies ControllerStats,
      ]),
    );
  }

  /** Stops waking controllers and waits for the passes under way. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    for (const stop of this.stops.splice(0)) stop();
    await Promise.all(this.slots.map(s => s.running));
  }

  private deliver(event: StoredEvent): void {
    for (const slot of this.slots) {
      if (!slot.wakeOn.has(event.type)) continue;
      slot.events.push(event);
      this.schedule(slot);
    }
  }

  private schedule(slot: Slot): void {
    // A running pass looks for more work when it ends.
    if (this.state !== 'started' || slot.scheduled || slot.running) return;
    slot.scheduled = true;
    // After the current turn, so the events of one commit (and of the commits
    // published with it) wake one pass.
    setImmediate(() => {
      slot.scheduled = false;
      if (this.state !== 'started' || slot.running) return;
      slot.running = this.drain(slot).finally(() => {
        slot.running = null;
        // Events that came while a pass failed are the next wake-up.
        if (slot.events.length > 0) this.schedule(slot);
      });
    });
  }

  private async drain(slot: Slot): Promise<void> {
    const batchMs = slot.controller.batchMs ?? 0;
    let lastStart: number | null = null;
    while (this.state === 'started' && (slot.resyncDue || slot.events.length > 0)) {
      if (lastStart !== null && batchMs > 0) {
        const wait = lastStart + batchMs - performance.now();
        if (wait > 0) await this.sleep(wait);
        if (this.state !== 'started') return;
      }
      lastStart = performance.now();
      const pass: Pass = {
        events: slot.events.splice(0),
        resync: slot.resyncDue || slot.owesFull,
        now: this.clock.now(),
        startedAt: this.startedAt,
      };
      slot.resyncDue = false;
      slot.owesFull = false;
      const start = lastStart;
      try {
        await chargeTo(slot.cpu, () => slot.controller.reconcile(pass));
      } catch (err) {
        slot.owesFull = true;
        this.o.log.error({ err, controller: slot.controller.name }, 'reconcile failed; retried at the next wake-up');
        return;
      } finally {
        slot.passes++;
        slot.busyMs += performance.now() - start;
      }
    }
  }
}
