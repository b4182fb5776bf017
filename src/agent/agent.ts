// The host agent: registers (once), heartbeats, watches its assignments with a
// long-poll that the server answers the moment they change, and keeps one
// runner per assigned instance (instance-runner.ts) that drives it towards its
// desired state through the driver of its kind.
import type { Logger } from 'pino';
import type { Driver } from '../drivers/driver.ts';
import type { Assignments } from '../kinds/schemas.ts';
import type { Gate } from '../lib/gate.ts';
import { ensurePrivateDir } from '../lib/private-dir.ts';
import { sleep } from '../lib/time.ts';
import type { Fingerprint } from '../model/agent-protocol.ts';
import type { DriverName } from '../model/schemas.ts';
import type { StepReport } from '../model/nodes.ts';
import type { TopologyFlags } from '../model/topology.ts';
import { AgentApi, AgentApiError } from './api-client.ts';
import { fingerprint } from './fingerprint.ts';
import { loadIdentity, saveIdentity, type Identity } from './identity.ts';
import { crashMessage, InstanceRunner, report, type RunnerContext } from './instance-runner.ts';
import type { Scope } from './last-resort.ts';
import { AgentStreams } from './streams.ts';

/** The longest the removal of instances deleted while the agent was away holds up the rest. */
const FENCE_WAIT_MS = 60_000;

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
  /** What the host offers, given the drivers that work; this machine's own by default (simulated hosts bring theirs). */
  fingerprint?: (drivers: DriverName[]) => Fingerprint;
  /** Shared by agents in one process (a simulated fleet): bounds their requests in flight together. */
  requestGate?: Gate;
}

/**
 * The wait before the next heartbeat: the interval give or take 10%, so hosts
 * started together (a simulated fleet, a rack after a power cut) do not all
 * beat in the same instant. The first wait is half to one interval.
 */
export function heartbeatDelayMs(seconds: number, first: boolean): number {
  const spread = first ? 0.5 + Math.random() * 0.5 : 0.9 + Math.random() * 0.2;
  return seconds * 1000 * spread;
}

export class Agent {
  private readonly o: AgentOptions;
  private readonly api: AgentApi;
  private readonly runnerContext: RunnerContext;
  private readonly stopping = new AbortController();
  private drivers = new Map<DriverName, Driver>();
  private identity: Identity | undefined;
  private heartbeatSeconds = 5;
  private loops: Promise<unknown>[] = [];
  /** One runner per instance of the last assignment answer. */
  private readonly runners = new Map<string, InstanceRunner>();
  /** The spec each runner was last handed (as JSON): an answer hands a runner only a spec that changed. */
  private readonly handed = new Map<string, string>();
  /** When every runner was last handed its spec, changed or not. */
  private lastLookAll = 0;

  constructor(o: AgentOptions) {
    this.o = o;
    this.api = new AgentApi(o.server, undefined, o.requestGate);
    this.runnerContext = { api: this.api, log: o.log };
  }

  get hostId(): string | undefined {
    return this.identity?.hostId;
  }

  /** Whether the instance is assigned to this host. */
  holds(instanceId: string): boolean {
    return this.runners.has(instanceId);
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
      driverFor: id => this.runners.get(id)?.driver,
      log: this.o.log,
    });
    this.loops = [this.heartbeatLoop(), this.watchLoop(), streams.run(this.stopping.signal)];
    const conductor = [...this.drivers.values()].find(d => d.conduct);
    if (conductor) this.loops.push(this.conductLoop(conductor));
  }

  /** Stops talking to the server; workloads keep running, for the next agent to find. */
  async stop(): Promise<void> {
    this.stopping.abort();
    for (const runner of this.runners.values()) runner.close();
    for (const d of this.drivers.values()) d.close?.();
    await Promise.allSettled(this.loops);
    this.api.close();
  }

  private fingerprint(): Fingerprint {
    const drivers = [...this.drivers.keys()];
    return this.o.fingerprint ? this.o.fingerprint(drivers) : fingerprint(this.o.dataDir, this.o.topology, drivers);
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
    let first = true;
    while (!signal.aborted) {
      await sleep(heartbeatDelayMs(this.heartbeatSeconds, first), signal);
      first = false;
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
    // The first answer, and the first after the server could not be reached, may fence.
    let away = true;
    while (!signal.aborted) {
      try {
        const waitSeconds = this.o.waitSeconds ?? 30;
        const res = await this.api.assignments(version, waitSeconds, signal);
        backoff = 250;
        const first = version === undefined;
        // An answer hands each runner its spec when it changed. An unchanged
        // answer (the wait ran out), and any answer a wait after the last
        // such look, hands every runner its spec: each looks at its instance
        // again, so whatever went amiss meanwhile (a report the server never
        // got) is put right within one wait. (Every runner looking on every
        // answer asked the runtime about each instance each time: on a busy
        // host, a rollout's answers kept Podman's service saturated.)
        const lookAll = res.version === version || Date.now() - this.lastLookAll >= waitSeconds * 1000;
        version = res.version;
        await this.assign(res.instances, first, away, lookAll);
        away = false;
      } catch (err) {
        if (signal.aborted) break;
        away = true;
        this.o.log.warn({ err: String(err) }, 'assignment watch failed; retrying');
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  /** Bare metal: the nodes this host conducts, watched like the assignments and handed to the driver. */
  private async conductLoop(driver: Driver): Promise<void> {
    const signal = this.stopping.signal;
    let version: string | undefined;
    let backoff = 250;
    const report = async (id: string, r: StepReport) => {
      await this.api.stepReport(id, r);
    };
    while (!signal.aborted) {
      try {
        const res = await this.api.nodes(version, this.o.waitSeconds ?? 30, signal);
        backoff = 250;
        version = res.version;
        driver.conduct?.(res.nodes, report);
      } catch (err) {
        if (signal.aborted) break;
        this.o.log.warn({ err: String(err) }, 'node watch failed; retrying');
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  /** A new assignment answer: runners for new instances, none for those gone, and each told its spec. */
  private async assign(
    instances: Assignments['instances'],
    first: boolean,
    back: boolean,
    lookAll = true,
  ): Promise<void> {
    const fresh = new Set(instances.map(i => i.id));
    for (const spec of instances) {
      if (!this.runners.has(spec.id))
        this.runners.set(spec.id, new InstanceRunner(spec, this.drivers.get(spec.kind), this.runnerContext));
    }
    if (first) await this.collectOrphans();
    for (const [id, runner] of this.runners) {
      if (fresh.has(id)) continue;
      this.runners.delete(id);
      this.handed.delete(id);
      runner.forget();
    }
    const fenced = back ? await this.fence(instances) : new Set<string>();
    const all = lookAll || first || back;
    if (all) this.lastLookAll = Date.now();
    for (const spec of instances) {
      if (fenced.has(spec.id)) continue;
      const json = JSON.stringify(spec);
      const runner = this.runners.get(spec.id);
      if (!all && this.handed.get(spec.id) === json && !runner?.wantsLook) continue;
      this.handed.set(spec.id, json);
      runner?.update(spec);
    }
  }

  /**
   * Back from a restart, or after the server could not be reached: the instances deleted meanwhile (replaced
   * elsewhere while this host was not heard from) are removed before anything
   * else is started, so that no replica runs here and elsewhere at once.
   */
  private async fence(instances: Assignments['instances']): Promise<Set<string>> {
    const going = instances.filter(i => i.desiredState === 'deleted');
    if (going.length === 0) return new Set();
    this.o.log.info({ instances: going.length }, 'removing instances deleted while this agent was away');
    for (const spec of going) this.runners.get(spec.id)?.update(spec);
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>(resolve => {
      timer = setTimeout(resolve, FENCE_WAIT_MS);
    });
    await Promise.race([Promise.all(going.map(i => this.runners.get(i.id)?.idle())), bound]);
    clearTimeout(timer);
    return new Set(going.map(i => i.id));
  }

  /**
   * An error nobody caught in this instance's work (see last-resort.ts): the
   * instance fails with it; a stream's failure ends only the stream.
   */
  instanceCrashed(s: Scope, err: unknown): void {
    if (s.stream) return;
    const runner = this.runners.get(s.instance);
    if (runner) {
      runner.crashed(err);
      return;
    }
    void report(this.runnerContext, s.instance, 'failed', { message: crashMessage(err) }, this.stopping.signal);
  }

  /** Workloads whose instance was deleted while the agent was away are removed. */
  private async collectOrphans(): Promise<void> {
    for (const driver of this.drivers.values()) {
      const held = await driver.list(this.identity!.hostId).catch(() => []);
      for (const id of held) {
        if (this.runners.has(id)) continue;
        this.o.log.info({ instance: id, driver: driver.name }, 'removing a workload no longer assigned here');
        await driver
          .destroy(id)
          .catch((err: unknown) => this.o.log.warn({ err: String(err), instance: id }, 'clean-up failed'));
      }
    }
  }
}
