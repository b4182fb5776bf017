// The conductor: the work behind each provisioning step of the nodes this
// host drives (Ironic's conductor). The server says where each node is; the
// conductor does the step it names, once per attempt (its start time), and
// reports how it ended. Its rules:
// - Every step begins from a known place: the node is powered off first, so a
//   step redone after a conductor restart starts clean (nothing is stuck).
// - A step ends by its deadline: waiting for a node to call back is bounded
//   by it, and the reason says which wait ran out.
// - A node the server moved on (maintenance, a timeout, a deletion) has its
//   step aborted at once; the node is left powered off.
// - Network boot for IPMI nodes, virtual media for Redfish ones.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseBmcUrl } from '../../model/bmc-url.ts';
import type { ConductedNode, StepReport } from '../../model/nodes.ts';
import { openBmc } from './bmc/index.ts';
import { ConsoleLog } from './console-log.ts';
import { Phases } from './phases.ts';
import type { ProvisioningNetwork } from './provisioning/index.ts';
import type { Bmc, BmcAddress, BootSession, Hardware, RamdiskTask, TaskResult } from './types.ts';

/** The line a node's own OS prints once it is up (guest/metal-init). */
export const OS_UP = /strata-metal: ready/;
export const EXIT = /strata-exit: (\d+)/;

export type StepReporter = (nodeId: string, report: StepReport) => Promise<void>;

/** What a step's wait ran out on, said in the failure. */
export class StepTimeout extends Error {}

/** The address a stored BMC URL names. */
export const bmcAddressOf = (url: string): BmcAddress => parseBmcUrl(url);

/** One node as this conductor knows it: the server's word, its BMC, its console record, the step under way. */
export class NodeWorker {
  node: ConductedNode;
  readonly console: ConsoleLog;
  private bmcCache: { url: string; bmc: Bmc } | undefined;
  /** The step attempt under way: its start time, and how to abort it. */
  private current: { key: string; abort: AbortController; done: Promise<void> } | undefined;
  /** Hardware found by this conductor (MACs for the next network boot before the server echoes them). */
  hardware: Hardware | undefined;
  /** What the step under way waits for now, said if its deadline passes. */
  phase = '';

  constructor(node: ConductedNode, dir: string) {
    this.node = node;
    mkdirSync(dir, { recursive: true });
    this.console = new ConsoleLog(join(dir, 'console.log'), () => this.bmc());
  }

  bmc(): Bmc {
    if (!this.bmcCache || this.bmcCache.url !== this.node.bmcUrl)
      this.bmcCache = { url: this.node.bmcUrl, bmc: openBmc(bmcAddressOf(this.node.bmcUrl)) };
    return this.bmcCache.bmc;
  }

  get macs(): string[] {
    return this.hardware ? this.hardware.nics.map(n => n.mac) : this.node.macs;
  }

  /** The step attempt running now, if it is `key`. */
  running(key: string): Promise<void> | undefined {
    return this.current?.key === key ? this.current.done : undefined;
  }

  /** Runs `work` as the node's one step attempt `key`, aborting any other. */
  run(key: string, deadline: number, work: (signal: AbortSignal) => Promise<void>): Promise<void> {
    const same = this.running(key);
    if (same) return same;
    this.abort();
    const abort = new AbortController();
    const ms = Math.max(0, deadline - Date.now());
    const timer = setTimeout(() => abort.abort(new StepTimeout(`${ms}`)), ms);
    const done = work(abort.signal).finally(() => {
      clearTimeout(timer);
      if (this.current?.abort === abort) this.current = undefined;
    });
    this.current = { key, abort, done };
    return done;
  }

  abort(): void {
    this.current?.abort.abort(new Error('the node moved on'));
    this.current = undefined;
  }
}

export interface ConductorOptions {
  dataDir: string;
  network: () => Promise<ProvisioningNetwork>;
  report: StepReporter;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

/** Steps the conductor runs on the server's word alone; deploying is run by the instance's start. */
const nodeSteps = new Set(['verifying', 'inspecting', 'cleaning', 'undeploying']);

export class Conductor {
  readonly workers = new Map<string, NodeWorker>();
  private readonly o: ConductorOptions;
  private readonly known = new Set<string>();
  private readonly arrivals = new Set<() => void>();

  constructor(o: ConductorOptions) {
    this.o = o;
  }

  /** The server's latest word on this host's nodes. */
  update(nodes: readonly ConductedNode[]): void {
    const seen = new Set<string>();
    for (const n of nodes) {
      seen.add(n.id);
      let w = this.workers.get(n.id);
      if (!w) {
        w = new NodeWorker(n, join(this.o.dataDir, 'nodes', n.id));
        this.workers.set(n.id, w);
      }
      w.node = n;
      this.drive(w);
    }
    for (const [id, w] of this.workers) {
      if (seen.has(id)) continue;
      w.abort();
      w.console.stop();
      this.workers.delete(id);
    }
    this.known.clear();
    for (const id of seen) this.known.add(id);
    for (const wake of [...this.arrivals]) wake();
  }

  /** The node's worker once the server has told of it in `state` (an instance's start may come first). */
  async worker(nodeId: string, state: string, signal: AbortSignal): Promise<NodeWorker> {
    for (;;) {
      const w = this.workers.get(nodeId);
      if (w && w.node.provisionState === state) return w;
      if (signal.aborted) throw new Error(`node ${nodeId} is not ${state} on this conductor`);
      await new Promise<void>(resolve => {
        const wake = () => {
          this.arrivals.delete(wake);
          signal.removeEventListener('abort', wake);
          resolve();
        };
        this.arrivals.add(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
  }

  stop(): void {
    for (const w of this.workers.values()) {
      w.abort();
      w.console.stop();
    }
  }

  private drive(w: NodeWorker): void {
    const n = w.node;
    const recording =
      n.provisionState === 'deploying' || n.provisionState === 'active' || nodeSteps.has(n.provisionState);
    if (recording && !n.maintenance) w.console.start();
    else w.console.stop();
    if (n.maintenance || !nodeSteps.has(n.provisionState) || !n.stepStartedAt) {
      // Deploys are driven by the instance; anything else the node left behind is aborted.
      if (n.provisionState !== 'deploying') w.abort();
      return;
    }
    const key = `${n.provisionState}@${n.stepStartedAt}`;
    if (w.running(key)) return;
    const step = n.provisionState as 'verifying' | 'inspecting' | 'cleaning' | 'undeploying';
    const startedAt = n.stepStartedAt;
    const deadline = n.stepDeadlineAt ? Date.parse(n.stepDeadlineAt) : Date.now() + 600_000;
    void w.run(key, deadline, async signal => {
      const began = Date.now();
      const phases = new Phases();
      let report: StepReport;
      try {
        const hardware = await this.runStep(w, step, signal, phases);
        report = { step, stepStartedAt: startedAt, ok: true, ...(hardware ? { hardware } : {}) };
        this.o.log('node step done', { node: n.name, step, ms: Date.now() - began, ...phases.ms });
      } catch (err) {
        if (signal.aborted && !(signal.reason instanceof StepTimeout)) return;
        const message = describe(err, signal, step, w.phase);
        this.o.log('node step failed', { node: n.name, step, message, ...phases.ms });
        await w
          .bmc()
          .setPower('off')
          .catch(() => undefined);
        report = { step, stepStartedAt: startedAt, ok: false, message };
      }
      await this.deliver(n.id, report);
    });
  }

  /** A step's report, sent until the server takes or refuses it. */
  async deliver(nodeId: string, report: StepReport): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await this.o.report(nodeId, report);
        return;
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (status !== undefined && status >= 400 && status < 500) return;
        await new Promise(r => setTimeout(r, Math.min(250 * 2 ** attempt, 5000)));
      }
    }
  }

  private async runStep(
    w: NodeWorker,
    step: string,
    signal: AbortSignal,
    phases: Phases,
  ): Promise<Hardware | undefined> {
    const bmc = w.bmc();
    switch (step) {
      case 'verifying':
        await bmc.verify();
        await bmc.power();
        return undefined;
      case 'undeploying':
        await bmc.setPower('off');
        if (bmc.supportsVirtualMedia) await bmc.ejectMedia();
        return undefined;
      case 'inspecting': {
        const { hardware } = await this.ramdisk(w, { action: 'inspect' }, signal, { phases });
        return hardware;
      }
      case 'cleaning': {
        const { result } = await this.ramdisk(w, { action: 'clean' }, signal, { phases });
        if (!result.ok) throw new Error(result.message || 'the ramdisk could not clean the disks');
        return undefined;
      }
      default:
        throw new Error(`no step ${step}`);
    }
  }

  /**
   * Boots the deploy ramdisk on the node and gives it `task`: network boot for
   * IPMI, the ramdisk's ISO as virtual media for Redfish. Leaves the node off.
   * Phases: arm (the node off, the boot armed, media inserted, boot device set), powerOn,
   * ramdiskBoot (until its call-back), the task's own, powerOff.
   * `meanwhile` runs while the ramdisk does its task (the next boot's settings,
   * off the critical path); the step fails if it fails.
   */
  async ramdisk(
    w: NodeWorker,
    task: RamdiskTask,
    signal: AbortSignal,
    o: { phases?: Phases; meanwhile?: () => Promise<void> } = {},
  ): Promise<{ hardware: Hardware; result: TaskResult }> {
    const phases = o.phases ?? new Phases();
    const bmc = w.bmc();
    const net = await this.o.network();
    await bmc.setPower('off');
    let session: BootSession;
    if (bmc.supportsVirtualMedia) {
      const media = await net.armMediaBoot(w.node.id, task);
      session = media.session;
      await bmc.ejectMedia().catch(() => undefined);
      await bmc.insertMedia(media.isoUrl);
      await bmc.setBootDevice('cd', false);
    } else {
      session = await net.armNetworkBoot(w.node.id, w.macs, task);
      await bmc.setBootDevice('pxe', false);
    }
    phases.mark('arm');
    let booted = false;
    try {
      await bmc.setPower('on', 'off');
      phases.mark('powerOn');
      w.phase = 'waiting for the node to boot the ramdisk and call back';
      const hardware = await session.hello(signal);
      booted = true;
      phases.mark('ramdiskBoot');
      w.hardware = hardware;
      w.phase = `waiting for the ramdisk to ${task.action}`;
      const [result] = await Promise.all([session.done(signal), o.meanwhile?.()]);
      phases.mark(task.action);
      w.phase = '';
      return { hardware, result };
    } finally {
      session.close();
      // A ramdisk that called back runs: the BMC need not be asked.
      await bmc.setPower('off', booted ? 'on' : undefined).catch(() => undefined);
      if (bmc.supportsVirtualMedia) await bmc.ejectMedia().catch(() => undefined);
      phases.mark('powerOff');
    }
  }
}

/** Why a step failed: its deadline (and the wait it was in), or the error. */
export function describe(err: unknown, signal: AbortSignal, step: string, phase: string): string {
  if (signal.aborted && signal.reason instanceof StepTimeout) {
    const secs = Math.round(Number(signal.reason.message) / 1000);
    return `${step} timed out after ${secs} s${phase ? ` ${phase}` : ''}`;
  }
  return err instanceof Error ? err.message : String(err);
}
