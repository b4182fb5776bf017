// One instance on this host, driven towards its desired state. The agent keeps
// one runner per assigned instance; the runner holds everything the agent
// knows of it beyond the server's answer: what it is doing now (one reconcile
// at a time, a newer spec waiting), the exit it waits for, its restart policy's
// count and timer, a user's restart in progress, and its health checks.
import type { Logger } from 'pino';
import type { Driver, InstanceSpec, Observed } from '../drivers/driver.ts';
import { sleep } from '../lib/time.ts';
import { type AgentApi, isTransient, type ReportExtra } from './api-client.ts';
import { type Health, HealthMonitor, runCheck } from './health.ts';
import { scope } from './last-resort.ts';
import { restartDecision } from '../model/restart-policy.ts';

/** What a runner needs of its agent: the server to report to, and a log. */
export interface RunnerContext {
  api: Pick<AgentApi, 'report' | 'observe'>;
  log: Logger;
}

/** The part of what a driver sees that the server records beside the state. */
function observedOf(seen: Observed): NonNullable<ReportExtra['observed']> {
  return {
    address: seen.address ?? null,
    ports: seen.ports ?? [],
    ...(seen.accelerator ? { accelerator: seen.accelerator } : {}),
  };
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** What an instance fails with when the agent hit an error nobody caught in its work. */
export const crashMessage = (err: unknown): string =>
  `the agent hit an unexpected error handling this instance: ${messageOf(err)}`.slice(0, 4096);

/** The wait before attempt `n + 1` of a report: doubling from a quarter second to 5 s, jittered so a fleet does not retry in step. */
export function retryDelayMs(attempt: number): number {
  return Math.min(250 * 2 ** attempt, 5000) * (0.5 + Math.random() * 0.5);
}

/**
 * Sends a report until the server takes it. A report that could not be
 * delivered (no answer, a reset connection, a busy or closing server) is made
 * again: dropped, it would leave the instance in its last state for good, as
 * nothing else tells the server. A refusal (an illegal transition: the server
 * already moved on; the instance is gone) is final; the next assignment
 * answer has the truth. Gives up when `signal` aborts (the runner let go).
 */
export async function deliver(
  ctx: RunnerContext,
  id: string,
  what: string,
  send: () => Promise<unknown>,
  signal?: AbortSignal,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await send();
      return;
    } catch (err) {
      if (signal?.aborted) return;
      if (!isTransient(err)) {
        ctx.log.warn({ err: String(err), instance: id, report: what }, 'report refused');
        return;
      }
      if (attempt === 0) ctx.log.warn({ err: String(err), instance: id, report: what }, 'report failed; retrying');
      await sleep(retryDelayMs(attempt), signal);
      if (signal?.aborted) return;
    }
  }
}

/** Reports a state (see `deliver`). */
export function report(
  ctx: RunnerContext,
  id: string,
  state: InstanceSpec['state'],
  extra: ReportExtra = {},
  signal?: AbortSignal,
): Promise<void> {
  return deliver(ctx, id, state, () => ctx.api.report(id, state, extra), signal);
}

export class InstanceRunner {
  readonly id: string;
  /** The driver of the instance's kind on this host; none when the host cannot run it. */
  readonly driver: Driver | undefined;
  private readonly ctx: RunnerContext;
  /** The latest assignment answer for this instance. */
  private spec: InstanceSpec;
  /** A reconcile (or a restart by policy) is under way; `next` runs after it. */
  private busy = false;
  private next: InstanceSpec | undefined;
  /** Waiting for the work under way (and what comes after it) to end. */
  private idleWaiters: (() => void)[] = [];
  /** Restarts this agent made, ahead of what the server has sent back. */
  private restartsSeen = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  /** The exit of the running workload is being waited for. */
  private watching = false;
  /** The user's restart request acted on (its request time), and whether one runs now. */
  private restartDone: string | undefined;
  private restarting = false;
  private lookFailed = false;
  /** Set once this process has reported the running instance's address; its health checks, if any. */
  private attached = false;
  private monitor: HealthMonitor | undefined;
  /** No longer assigned here (or the agent stops): nothing more is reported; reports being retried give up. */
  private closed = false;
  private readonly closing = new AbortController();

  constructor(spec: InstanceSpec, driver: Driver | undefined, ctx: RunnerContext) {
    this.id = spec.id;
    this.spec = spec;
    this.driver = driver;
    this.ctx = ctx;
  }

  /** A new answer from the server: act on it, after whatever is under way. */
  update(spec: InstanceSpec): void {
    this.spec = spec;
    if (this.busy) {
      this.next = spec;
      return;
    }
    this.exclusive(async () => {
      this.lookFailed = false;
      try {
        await this.reconcileOnce(spec);
      } catch (err) {
        this.lookFailed = true;
        throw err;
      }
    });
  }

  /** Its last look at the instance failed: it wants the next answer's spec even if that did not change. */
  get wantsLook(): boolean {
    return this.lookFailed;
  }

  /** Resolves once no work is under way or waiting for this instance. */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise(resolve => this.idleWaiters.push(resolve));
  }

  /** The instance left this host's assignments, or the agent stops: let go of it (the workload stays). */
  close(): void {
    this.closed = true;
    this.closing.abort();
    this.detach();
    clearTimeout(this.restartTimer);
  }

  /**
   * The instance left without a `deleted` report from here: it was forgotten
   * by force (its host was thought dead), or preempted and stopped (it waits
   * for a host again), so its workload is removed.
   */
  forget(): void {
    this.close();
    const driver = this.driver;
    if (!driver || this.spec.desiredState === 'deleted') return;
    this.ctx.log.info({ instance: this.id }, 'removing the workload of an instance no longer assigned here');
    void scope
      .run({ instance: this.id }, () => driver.destroy(this.id))
      .catch((err: unknown) => this.ctx.log.warn({ err: String(err), instance: this.id }, 'clean-up failed'));
  }

  /**
   * An error nobody caught in this instance's work (see last-resort.ts): the
   * instance fails with it, and whatever was in flight for it is let go, so
   * the next assignment answer can act on it again.
   */
  crashed(err: unknown): void {
    this.detach();
    this.busy = false;
    this.next = undefined;
    this.restarting = false;
    void this.report('failed', { message: crashMessage(err) });
  }

  /** Runs `work` as this instance's one piece of work now; a spec that arrived meanwhile runs next. */
  private exclusive(work: () => Promise<void>): void {
    this.busy = true;
    void scope
      .run({ instance: this.id }, work)
      .catch((err: unknown) => this.ctx.log.error({ err: String(err), instance: this.id }, 'reconcile failed'))
      .finally(() => {
        this.busy = false;
        const next = this.next;
        this.next = undefined;
        if (next && !this.closed) this.update(next);
        if (this.busy) return;
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      });
  }

  private report(state: InstanceSpec['state'], extra: ReportExtra = {}): Promise<void> {
    return report(this.ctx, this.id, state, extra, this.closing.signal);
  }

  private detach(): void {
    this.monitor?.stop();
    this.monitor = undefined;
    this.attached = false;
  }

  /** Waits for the running workload to end and reports how it ended. */
  private watchExit(driver: Driver): void {
    if (this.watching) return;
    this.watching = true;
    void driver
      .waitExit(this.id)
      .then(async code => {
        this.watching = false;
        // A user's restart stops the process on purpose; its path reports.
        if (this.restarting || this.closed) return;
        this.detach();
        const spec = this.spec;
        // An exit the agent caused (stop, delete) is reported by that path.
        if (spec.desiredState !== 'running' && spec.desiredState !== 'paused') return;
        const seen = await driver.inspect(this.id);
        if (seen.state === 'running') return this.watchExit(driver);
        if (seen.state === 'absent') return;
        const restarts = Math.max(spec.restarts, this.restartsSeen);
        const next = restartDecision(spec.restartPolicy, code, restarts);
        const why = seen.message ?? `exited with code ${code}`;
        const message = next.restart ? `${why}; restarting in ${next.delaySeconds} s (restart ${restarts + 1})` : why;
        await this.report(seen.state, { exitCode: code, message });
        if (next.restart) this.scheduleRestart(driver, restarts + 1, next.delaySeconds);
      })
      .catch((err: unknown) => {
        this.watching = false;
        this.ctx.log.warn({ err: String(err), instance: this.id }, 'lost track of a workload exit');
      });
  }

  /** Restarts an exited instance by its policy, after its backoff, unless told otherwise meanwhile. */
  private scheduleRestart(driver: Driver, attempt: number, delaySeconds: number): void {
    this.restartsSeen = attempt;
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      const spec = this.spec;
      if (this.closed || spec.desiredState !== 'running') return;
      // Other work for this instance is under way: the restart waits for it rather than being lost.
      if (this.busy) return this.scheduleRestart(driver, attempt, 1);
      this.exclusive(async () => {
        await this.report('starting', { restart: true, message: `restart ${attempt}` });
        try {
          await driver.start(spec);
          await this.nowRunning(driver, spec);
        } catch (err) {
          await this.report('failed', { message: messageOf(err) });
        }
      });
    }, delaySeconds * 1000);
    this.restartTimer.unref();
  }

  /** A user's restart: stop (signal, grace, kill), then start the same instance again. */
  private async restartNow(driver: Driver, spec: InstanceSpec): Promise<void> {
    this.restartDone = spec.restartRequestedAt ?? undefined;
    this.restarting = true;
    try {
      this.detach();
      if (driver.reboot) {
        // A machine that can reboot in place (a VM) does: same process, same disk.
        await this.report('starting', { message: 'rebooting' });
        await driver.reboot(this.id);
      } else {
        await this.restartByStopStart(driver, spec);
      }
      await this.reportRunning(driver, spec, { message: '' });
    } catch (err) {
      await this.report('failed', { message: messageOf(err) });
      return;
    } finally {
      this.restarting = false;
    }
    this.watchExit(driver);
  }

  private async restartByStopStart(driver: Driver, spec: InstanceSpec): Promise<void> {
    await this.report('stopping', { message: 'restart requested' });
    await driver.stop(this.id, spec.stopGraceSeconds);
    const ended = await driver.inspect(this.id);
    await this.report('stopped', { exitCode: ended.exitCode ?? null, message: 'restart requested' });
    await this.report('starting', { message: 'restart requested' });
    await driver.start(spec);
  }

  /**
   * Reports a long start step (an image pull) as the instance's message, at
   * most once a second. `done` drops what is left and waits for a report in
   * flight, so no progress report can land after the start's outcome.
   */
  private progress(): { update: (message: string) => void; done: () => Promise<void> } {
    let last = 0;
    let pending: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    let inFlight: Promise<void> = Promise.resolve();
    let finished = false;
    const flush = () => {
      timer = undefined;
      if (pending === undefined || finished) return;
      last = Date.now();
      const message = pending;
      pending = undefined;
      inFlight = inFlight.then(() => this.report('starting', { message }));
    };
    return {
      update: message => {
        pending = message;
        if (timer || finished) return;
        timer = setTimeout(flush, Math.max(0, last + 1000 - Date.now()));
        timer.unref();
      },
      done: async () => {
        finished = true;
        clearTimeout(timer);
        await inFlight;
      },
    };
  }

  /** The instance runs: report it, start its checks, and wait on its exit. */
  private async nowRunning(driver: Driver, spec: InstanceSpec, extra: ReportExtra = {}): Promise<void> {
    await this.reportRunning(driver, spec, extra);
    this.watchExit(driver);
  }

  /**
   * Reports `running` together with what the driver sees (address, ports,
   * accelerator) in one write, so nobody reads a running instance whose
   * address is not recorded yet; then starts its health checks.
   */
  private async reportRunning(driver: Driver, spec: InstanceSpec, extra: ReportExtra = {}): Promise<void> {
    // Checks already running belong to this same run (every stop, exit and
    // restart detaches them): a repeated report, e.g. on an answer sent before
    // the first one landed, keeps them and the health they found.
    const checking = this.attached;
    if (!checking) this.detach();
    const seen = await driver.inspect(this.id).catch(() => undefined);
    const running = seen?.state === 'running';
    await this.report('running', { ...extra, ...(running ? { observed: observedOf(seen) } : {}) });
    if (running && !checking) this.startChecks(driver, spec, seen.address ?? null);
  }

  /** A running instance found again (an agent restart): reports where it can be reached and starts its health checks. */
  private async attach(driver: Driver, spec: InstanceSpec): Promise<void> {
    this.detach();
    const seen = await driver.inspect(this.id).catch(() => undefined);
    if (seen?.state !== 'running') return;
    const observed = observedOf(seen);
    await deliver(this.ctx, this.id, 'observed', () => this.ctx.api.observe(this.id, observed), this.closing.signal);
    // The checks carry on from the health the server holds for this run.
    this.startChecks(driver, spec, seen.address ?? null, spec.state === 'running' ? spec.observed.health : null);
  }

  private startChecks(driver: Driver, spec: InstanceSpec, address: string | null, known: Health | null = null): void {
    const check = spec.healthCheck;
    this.attached = true;
    if (!check || this.closed) return;
    this.monitor = new HealthMonitor(
      check,
      () => runCheck(check, driver, this.id, address),
      async health => {
        await this.ctx.api
          .observe(this.id, { health })
          .catch((err: unknown) => this.ctx.log.warn({ err: String(err), instance: this.id }, 'health report refused'));
      },
      known,
    );
    this.monitor.start();
  }

  private async reconcileOnce(spec: InstanceSpec): Promise<void> {
    const driver = this.driver;
    if (spec.desiredState === 'deleted') {
      this.detach();
      if (spec.state !== 'deleting') return;
      if (driver) await driver.destroy(this.id);
      return this.report('deleted');
    }
    if (!driver) {
      if (spec.state !== 'failed') await this.report('failed', { message: `this host has no ${spec.kind} driver` });
      return;
    }
    const seen = await driver.inspect(this.id);
    const restartAsked = spec.restartRequestedAt !== null && this.restartDone !== spec.restartRequestedAt;
    if (spec.desiredState === 'running' && restartAsked && seen.state === 'running' && spec.state === 'running') {
      return this.restartNow(driver, spec);
    }
    // Only a fresh placement or a start request (both `scheduled`) starts a
    // workload; one that ran and ended stays ended (restart policies decide more).
    const wantsStart = spec.state === 'scheduled' || spec.state === 'starting';
    const alive = seen.state === 'running' || seen.state === 'paused';
    if (spec.desiredState === 'paused' && seen.state === 'running') {
      this.detach();
      await driver.pause(this.id);
      await this.report('paused');
    } else if (spec.desiredState === 'running' && seen.state === 'paused') {
      await driver.resume(this.id);
      await this.nowRunning(driver, spec);
    } else if (spec.desiredState === 'running' && !alive && wantsStart) {
      await this.report('starting');
      const progress = this.progress();
      try {
        await driver.start(spec, progress.update);
        await progress.done();
        await this.nowRunning(driver, spec, { message: '' });
      } catch (err) {
        await progress.done();
        await this.report('failed', { message: messageOf(err) });
      }
    } else if (spec.desiredState === 'stopped' && alive) {
      this.detach();
      await this.report('stopping');
      await driver.stop(this.id, spec.stopGraceOverride ?? spec.stopGraceSeconds);
      const after = await driver.inspect(this.id);
      await this.report('stopped', { exitCode: after.exitCode ?? null });
    } else if (alive) {
      // Found running or paused (an agent restart): carry on managing it.
      this.watchExit(driver);
      if (seen.state === 'running' && spec.state !== 'running') await this.reportRunning(driver, spec);
      if (seen.state === 'paused' && spec.state !== 'paused') await this.report('paused');
      if (seen.state === 'running' && !this.attached) await this.attach(driver, spec);
    } else if (seen.state === 'absent' && spec.state === 'lost') {
      // Back after its host was down, and the workload is gone (the host restarted).
      await this.report('failed', { message: 'the workload was gone when its host came back' });
    } else if (seen.state !== 'absent' && seen.state !== spec.state) {
      await this.report(seen.state, {
        exitCode: seen.exitCode ?? null,
        ...(seen.message ? { message: seen.message } : {}),
      });
    }
  }
}
