// The host agent: registers (once), heartbeats, watches its assignments with a
// long-poll that the server answers the moment they change, and drives each
// instance towards its desired state through the driver of its kind.
import { ensurePrivateDir } from '../lib/private-dir.ts';
import type { Logger } from 'pino';
import type { Driver, InstanceSpec, Observed } from '../drivers/driver.ts';
import { AgentApi, AgentApiError, type ReportExtra } from './api-client.ts';
import { restartDecision } from './restart-policy.ts';
import type { DriverName } from '../model/schemas.ts';
import type { TopologyFlags } from '../model/topology.ts';
import { fingerprint } from './fingerprint.ts';
import { loadIdentity, saveIdentity, type Identity } from './identity.ts';
import { HealthMonitor, runCheck } from './health.ts';
import { scope, type Scope } from './last-resort.ts';
import { AgentStreams } from './streams.ts';
import { sleep } from '../lib/time.ts';

/** The part of what a driver sees that the server records beside the state. */
function observedOf(seen: Observed): NonNullable<ReportExtra['observed']> {
  return {
    address: seen.address ?? null,
    ports: seen.ports ?? [],
    ...(seen.accelerator ? { accelerator: seen.accelerator } : {}),
  };
}

export interface AgentOptions {
  server: string;
  joinToken?: string | undefined;
  name: string;
  dataDir: string;
  topology: TopologyFlags;
  drivers: Driver[];
  log: Logger;
  /** Long-poll length; the server answers sooner on any change. */
  waitSeconds?: number;
}

export class Agent {
  private readonly o: AgentOptions;
  private readonly api: AgentApi;
  private readonly stopping = new AbortController();
  private drivers = new Map<DriverName, Driver>();
  private identity: Identity | undefined;
  private heartbeatSeconds = 5;
  private readonly busy = new Set<string>();
  private readonly dirty = new Map<string, InstanceSpec>();
  private loops: Promise<unknown>[] = [];
  /** The last assignment answer, by instance id. */
  private assigned = new Map<string, InstanceSpec>();
  /** Restarts this agent made, ahead of what the server has sent back. */
  private readonly restartsSeen = new Map<string, number>();
  /** Instances whose exit is being waited for. */
  private readonly watching = new Set<string>();
  /** Restart requests acted on (by request time), and instances being restarted now. */
  private readonly restartsDone = new Map<string, string>();
  private readonly restarting = new Set<string>();
  /** Running instances this process has reported the address of, and their health checks. */
  private readonly attached = new Map<string, HealthMonitor | undefined>();

  constructor(o: AgentOptions) {
    this.o = o;
    this.api = new AgentApi(o.server);
  }

  get hostId(): string | undefined {
    return this.identity?.hostId;
  }

  async start(): Promise<void> {
    ensurePrivateDir(this.o.dataDir);
    for (const d of this.o.drivers) {
      if (await d.probe().catch(() => false)) this.drivers.set(d.name, d);
      else this.o.log.warn({ driver: d.name }, 'driver does not work on this host; not offered');
    }
    await this.connect();
    const streams = new AgentStreams({
      server: this.o.server,
      token: () => this.api.token,
      driverFor: id => {
        const spec = this.assigned.get(id);
        return spec ? this.drivers.get(spec.kind) : undefined;
      },
      log: this.o.log,
    });
    this.loops = [this.heartbeatLoop(), this.watchLoop(), streams.run(this.stopping.signal)];
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    for (const id of [...this.attached.keys()]) this.detach(id);
    await Promise.allSettled(this.loops);
  }

  private fingerprint() {
    return fingerprint(this.o.dataDir, this.o.topology, [...this.drivers.keys()]);
  }

  /** Uses the saved identity when it still works; registers otherwise. */
  private async connect(): Promise<void> {
    const saved = loadIdentity(this.o.dataDir);
    if (saved && saved.server === this.o.server && saved.name === this.o.name) {
      this.api.token = saved.token;
      try {
        const ack = await this.api.heartbeat(this.fingerprint());
        this.identity = saved;
        this.heartbeatSeconds = ack.heartbeatSeconds;
        this.o.log.info({ hostId: saved.hostId }, 'agent resumed its registration');
        return;
      } catch (err) {
        if (!(err instanceof AgentApiError && err.status === 401)) throw err;
        this.o.log.warn('saved agent credential was refused; registering again');
      }
    }
    if (!this.o.joinToken) throw new Error('this agent is not registered yet: give it --join-token');
    this.api.token = undefined;
    const reg = await this.api.register(this.o.joinToken, this.o.name, this.fingerprint());
    this.identity = { server: this.o.server, hostId: reg.host.id, name: this.o.name, token: reg.token };
    saveIdentity(this.o.dataDir, this.identity);
    this.api.token = reg.token;
    this.heartbeatSeconds = reg.heartbeatSeconds;
    this.o.log.info({ hostId: reg.host.id, drivers: reg.host.drivers }, 'agent registered');
  }

  private async heartbeatLoop(): Promise<void> {
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      await sleep(this.heartbeatSeconds * 1000, signal);
      if (signal.aborted) break;
      try {
        const ack = await this.api.heartbeat(this.fingerprint());
        this.heartbeatSeconds = ack.heartbeatSeconds;
      } catch (err) {
        this.o.log.warn({ err: String(err) }, 'heartbeat failed');
        // A refused credential (host removed, re-registered elsewhere): join again if we can.
        if (err instanceof AgentApiError && err.status === 401 && this.o.joinToken) {
          await this.connect().catch((e: unknown) => this.o.log.error({ err: String(e) }, 'registering again failed'));
        }
      }
    }
  }

  private async watchLoop(): Promise<void> {
    const signal = this.stopping.signal;
    let version: string | undefined;
    let backoff = 250;
    while (!signal.aborted) {
      try {
        const res = await this.api.assignments(version, this.o.waitSeconds ?? 30, signal);
        backoff = 250;
        if (res.version === version) continue;
        const first = version === undefined;
        version = res.version;
        const before = this.assigned;
        this.assigned = new Map(res.instances.map(i => [i.id, i]));
        if (first) await this.collectOrphans();
        // An instance that left without a `deleted` report from here was
        // forgotten by force (its host was thought dead): remove its workload.
        for (const [id, spec] of before)
          if (!this.assigned.has(id) && spec.desiredState !== 'deleted') this.forgotten(spec);
        for (const inst of res.instances) this.reconcile(inst);
      } catch (err) {
        if (signal.aborted) break;
        this.o.log.warn({ err: String(err) }, 'assignment watch failed; retrying');
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  /** One reconcile at a time per instance; a newer spec arriving meanwhile runs next. */
  private reconcile(spec: InstanceSpec): void {
    if (this.busy.has(spec.id)) {
      this.dirty.set(spec.id, spec);
      return;
    }
    this.busy.add(spec.id);
    void scope
      .run({ instance: spec.id }, () => this.reconcileOnce(spec))
      .catch((err: unknown) => this.o.log.error({ err: String(err), instance: spec.id }, 'reconcile failed'))
      .finally(() => {
        this.busy.delete(spec.id);
        const next = this.dirty.get(spec.id);
        if (next) {
          this.dirty.delete(spec.id);
          this.reconcile(next);
        }
      });
  }

  /**
   * An error nobody caught in this instance's work (see last-resort.ts): the
   * instance fails with it, and whatever was in flight for it is let go, so
   * the next assignment answer can act on it again.
   */
  instanceCrashed(s: Scope, err: unknown): void {
    if (s.stream) return;
    const id = s.instance;
    this.detach(id);
    this.busy.delete(id);
    this.dirty.delete(id);
    this.restarting.delete(id);
    const why = err instanceof Error ? err.message : String(err);
    void this.report(id, 'failed', {
      message: `the agent hit an unexpected error handling this instance: ${why}`.slice(0, 4096),
    });
  }

  private async report(id: string, state: InstanceSpec['state'], extra: ReportExtra = {}) {
    try {
      await this.api.report(id, state, extra);
    } catch (err) {
      // A refused transition means the server already moved on; the next
      // assignment answer carries the current state.
      this.o.log.warn({ err: String(err), instance: id, state }, 'status report refused');
    }
  }

  private forgotten(spec: InstanceSpec): void {
    const driver = this.drivers.get(spec.kind);
    this.detach(spec.id);
    if (!driver) return;
    this.o.log.info({ instance: spec.id }, 'removing the workload of an instance deleted by force');
    void scope
      .run({ instance: spec.id }, () => driver.destroy(spec.id))
      .catch((err: unknown) => this.o.log.warn({ err: String(err), instance: spec.id }, 'clean-up failed'));
  }

  /** Workloads whose instance was deleted while the agent was away are removed. */
  private async collectOrphans(): Promise<void> {
    for (const driver of this.drivers.values()) {
      const held = await driver.list(this.identity!.hostId).catch(() => []);
      for (const id of held) {
        if (this.assigned.has(id)) continue;
        this.o.log.info({ instance: id, driver: driver.name }, 'removing a workload no longer assigned here');
        await driver
          .destroy(id)
          .catch((err: unknown) => this.o.log.warn({ err: String(err), instance: id }, 'clean-up failed'));
      }
    }
  }

  /** Waits for a running instance to end and reports how it ended. */
  private watchExit(driver: Driver, id: string): void {
    if (this.watching.has(id)) return;
    this.watching.add(id);
    void driver
      .waitExit(id)
      .then(async code => {
        this.watching.delete(id);
        // A user's restart stops the process on purpose; its path reports.
        if (this.restarting.has(id)) return;
        this.detach(id);
        const spec = this.assigned.get(id);
        // An exit the agent caused (stop, delete) is reported by that path.
        if (!spec || (spec.desiredState !== 'running' && spec.desiredState !== 'paused')) return;
        const seen = await driver.inspect(id);
        if (seen.state === 'running') return this.watchExit(driver, id);
        if (seen.state === 'absent') return;
        const restarts = Math.max(spec.restarts, this.restartsSeen.get(id) ?? 0);
        const next = restartDecision(spec.restartPolicy, code, restarts);
        const why = seen.message ?? `exited with code ${code}`;
        const message = next.restart ? `${why}; restarting in ${next.delaySeconds} s (restart ${restarts + 1})` : why;
        await this.report(id, seen.state, { exitCode: code, message });
        if (next.restart) this.scheduleRestart(driver, id, restarts + 1, next.delaySeconds);
      })
      .catch((err: unknown) => {
        this.watching.delete(id);
        this.o.log.warn({ err: String(err), instance: id }, 'lost track of a workload exit');
      });
  }

  /** A user's restart: stop (signal, grace, kill), then start the same instance again. */
  private async restartNow(driver: Driver, spec: InstanceSpec): Promise<void> {
    this.restartsDone.set(spec.id, spec.restartRequestedAt!);
    this.restarting.add(spec.id);
    try {
      this.detach(spec.id);
      if (driver.reboot) {
        // A machine that can reboot in place (a VM) does: same process, same disk.
        await this.report(spec.id, 'starting', { message: 'rebooting' });
        await driver.reboot(spec.id);
      } else {
        await this.restartByStopStart(driver, spec);
      }
      await this.reportRunning(driver, spec, { message: '' });
    } catch (err) {
      await this.report(spec.id, 'failed', { message: err instanceof Error ? err.message : String(err) });
      return;
    } finally {
      this.restarting.delete(spec.id);
    }
    this.watchExit(driver, spec.id);
  }

  private async restartByStopStart(driver: Driver, spec: InstanceSpec): Promise<void> {
    await this.report(spec.id, 'stopping', { message: 'restart requested' });
    await driver.stop(spec.id, spec.stopGraceSeconds);
    const ended = await driver.inspect(spec.id);
    await this.report(spec.id, 'stopped', { exitCode: ended.exitCode ?? null, message: 'restart requested' });
    await this.report(spec.id, 'starting', { message: 'restart requested' });
    await driver.start(spec);
  }

  /**
   * Reports a long start step (an image pull) as the instance's message, at
   * most once a second. `done` drops what is left and waits for a report in
   * flight, so no progress report can land after the start's outcome.
   */
  private progress(id: string): { update: (message: string) => void; done: () => Promise<void> } {
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
      inFlight = inFlight.then(() => this.report(id, 'starting', { message }));
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
    this.watchExit(driver, spec.id);
  }

  /**
   * Reports `running` together with what the driver sees (address, ports,
   * accelerator) in one write, so nobody reads a running instance whose
   * address is not recorded yet; then starts its health checks.
   */
  private async reportRunning(driver: Driver, spec: InstanceSpec, extra: ReportExtra = {}): Promise<void> {
    this.detach(spec.id);
    const seen = await driver.inspect(spec.id).catch(() => undefined);
    const running = seen?.state === 'running';
    await this.report(spec.id, 'running', { ...extra, ...(running ? { observed: observedOf(seen) } : {}) });
    if (running) this.startChecks(driver, spec, seen.address ?? null);
  }

  /** A running instance found again (an agent restart): reports where it can be reached and starts its health checks. */
  private async attach(driver: Driver, spec: InstanceSpec): Promise<void> {
    this.detach(spec.id);
    const seen = await driver.inspect(spec.id).catch(() => undefined);
    if (seen?.state !== 'running') return;
    await this.api.observe(spec.id, observedOf(seen)).catch((err: unknown) => {
      this.o.log.warn({ err: String(err), instance: spec.id }, 'observed-state report refused');
    });
    this.startChecks(driver, spec, seen.address ?? null);
  }

  private startChecks(driver: Driver, spec: InstanceSpec, address: string | null): void {
    const check = spec.healthCheck;
    const monitor = check
      ? new HealthMonitor(
          check,
          () => runCheck(check, driver, spec.id, address),
          async health => {
            await this.api
              .observe(spec.id, { health })
              .catch((err: unknown) =>
                this.o.log.warn({ err: String(err), instance: spec.id }, 'health report refused'),
              );
          },
        )
      : undefined;
    this.attached.set(spec.id, monitor);
    monitor?.start();
  }

  private detach(id: string): void {
    this.attached.get(id)?.stop();
    this.attached.delete(id);
  }

  /** Restarts an exited instance by its policy, after its backoff, unless told otherwise meanwhile. */
  private scheduleRestart(driver: Driver, id: string, attempt: number, delaySeconds: number): void {
    this.restartsSeen.set(id, attempt);
    const timer = setTimeout(() => {
      const spec = this.assigned.get(id);
      if (spec?.desiredState !== 'running' || this.busy.has(id)) return;
      this.busy.add(id);
      void (async () => {
        await this.report(id, 'starting', { restart: true, message: `restart ${attempt}` });
        try {
          await driver.start(spec);
          await this.nowRunning(driver, spec);
        } catch (err) {
          await this.report(id, 'failed', { message: err instanceof Error ? err.message : String(err) });
        }
      })().finally(() => this.busy.delete(id));
    }, delaySeconds * 1000);
    timer.unref();
  }

  private async reconcileOnce(spec: InstanceSpec): Promise<void> {
    const driver = this.drivers.get(spec.kind);
    if (spec.desiredState === 'deleted') {
      this.detach(spec.id);
      if (spec.state !== 'deleting') return;
      if (driver) await driver.destroy(spec.id);
      return this.report(spec.id, 'deleted');
    }
    if (!driver) {
      if (spec.state !== 'failed')
        await this.report(spec.id, 'failed', { message: `this host has no ${spec.kind} driver` });
      return;
    }
    const seen = await driver.inspect(spec.id);
    const restartAsked = spec.restartRequestedAt !== null && this.restartsDone.get(spec.id) !== spec.restartRequestedAt;
    if (spec.desiredState === 'running' && restartAsked && seen.state === 'running' && spec.state === 'running') {
      return this.restartNow(driver, spec);
    }
    // Only a fresh placement or a start request (both `scheduled`) starts a
    // workload; one that ran and ended stays ended (restart policies decide more).
    const wantsStart = spec.state === 'scheduled' || spec.state === 'starting';
    const alive = seen.state === 'running' || seen.state === 'paused';
    if (spec.desiredState === 'paused' && seen.state === 'running') {
      this.detach(spec.id);
      await driver.pause(spec.id);
      await this.report(spec.id, 'paused');
    } else if (spec.desiredState === 'running' && seen.state === 'paused') {
      await driver.resume(spec.id);
      await this.nowRunning(driver, spec);
    } else if (spec.desiredState === 'running' && !alive && wantsStart) {
      await this.report(spec.id, 'starting');
      const progress = this.progress(spec.id);
      try {
        await driver.start(spec, progress.update);
        await progress.done();
        await this.nowRunning(driver, spec, { message: '' });
      } catch (err) {
        await progress.done();
        await this.report(spec.id, 'failed', { message: err instanceof Error ? err.message : String(err) });
      }
    } else if (spec.desiredState === 'stopped' && alive) {
      this.detach(spec.id);
      await this.report(spec.id, 'stopping');
      await driver.stop(spec.id, spec.stopGraceOverride ?? spec.stopGraceSeconds);
      const after = await driver.inspect(spec.id);
      await this.report(spec.id, 'stopped', { exitCode: after.exitCode ?? null });
    } else if (alive) {
      // Found running or paused (an agent restart): carry on managing it.
      this.watchExit(driver, spec.id);
      if (seen.state === 'running' && spec.state !== 'running') await this.reportRunning(driver, spec);
      if (seen.state === 'paused' && spec.state !== 'paused') await this.report(spec.id, 'paused');
      if (seen.state === 'running' && !this.attached.has(spec.id)) await this.attach(driver, spec);
    } else if (seen.state === 'absent' && spec.state === 'lost') {
      // Back after its host was down, and the workload is gone (the host restarted).
      await this.report(spec.id, 'failed', { message: 'the workload was gone when its host came back' });
    } else if (seen.state !== 'absent' && seen.state !== spec.state) {
      await this.report(spec.id, seen.state, {
        exitCode: seen.exitCode ?? null,
        ...(seen.message ? { message: seen.message } : {}),
      });
    }
  }
}
