// The metal driver: a metal instance is a deployment of its image to a whole
// node. Its start is Ironic's deploy: build (or reuse) the image's bootable
// disk, boot the deploy ramdisk, write the disk and the config drive, then
// boot the node from its own disk and wait for its OS. The node's other steps
// are the conductor's (conductor.ts), which this driver owns.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError, conflict } from '../../lib/errors.ts';
import { sleep } from '../../lib/time.ts';
import type { ConductedNode } from '../../model/nodes.ts';
import type { RegistryAuth } from '../container/registry-auth.ts';
import type { Driver, ExecSession, InstanceSpec, LogOptions, Observed, OutputChunk } from '../driver.ts';
import { metalCapabilities } from './capabilities.ts';
import { Conductor, describe, EXIT, type NodeWorker, OS_UP, type StepReporter } from './conductor.ts';
import type { MetalFields } from './fields.ts';
import { isDiskImageUrl } from '../../model/disk-url.ts';
import { buildConfigDrive, buildWholeDiskImage, fetchDiskImage } from './images/index.ts';
import { Phases } from './phases.ts';
import { conductorMissing } from './prerequisites.ts';
import { ProvisioningNetwork } from './provisioning/index.ts';

/** The largest disk image fetched by URL when the node's disk size is not known here. */
const DISK_IMAGE_MAX_BYTES = 64 * 1024 ** 3;

/**
 * Whether the node's OS is ours to wait for: a disk built from an OCI image
 * boots guest/metal-init, which says when it is up. A disk image by URL is
 * any OS: its deploy ends, as Ironic's does, when the node is on from its disk.
 */
const announcesItself = (image: string): boolean => !isDiskImageUrl(image);

export interface MetalDriverOptions {
  /** The agent's directory for metal (DATA/metal). */
  dataDir: string;
  /** The provisioning network's bridge; none: this host conducts no nodes. */
  bridge: string;
  /** The conductor's address on it, as a CIDR (172.30.250.1/24). */
  cidr: string;
  /** The boot server's port on that address. */
  httpPort: number;
  /** The deploy ramdisk (scripts/metal.sh). */
  deployDir: string;
  /** The kernel booted nodes run (scripts/vm.sh). */
  kernelDir: string;
  dockerSocket: string;
  registryAuth?: RegistryAuth | undefined;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export class MetalDriver implements Driver {
  readonly name = 'metal' as const;
  readonly capabilities = metalCapabilities;
  private readonly o: MetalDriverOptions;
  private network: Promise<ProvisioningNetwork> | undefined;
  private reporter: StepReporter | undefined;
  readonly conductor: Conductor;
  /** instance id -> node id, as the server assigned them */
  private readonly placed = new Map<string, string>();

  constructor(o: MetalDriverOptions) {
    this.o = o;
    this.conductor = new Conductor({
      dataDir: o.dataDir,
      network: () => this.net(),
      report: (id, r) => {
        if (!this.reporter) throw new Error('no server to report to yet');
        return this.reporter(id, r);
      },
      log: o.log ?? (() => undefined),
    });
  }

  async probe(): Promise<boolean> {
    if (!this.o.bridge) return false;
    return (await conductorMissing({ deployDir: this.o.deployDir, kernelDir: this.o.kernelDir })).length === 0;
  }

  /** The agent's side: where step reports go, and the server's word on the nodes. */
  conduct(nodes: readonly ConductedNode[], report: StepReporter): void {
    this.reporter = report;
    for (const n of nodes) if (n.instance) this.placed.set(n.instance, n.id);
    this.conductor.update(nodes);
  }

  close(): void {
    this.conductor.stop();
    void this.network?.then(n => n.close()).catch(() => undefined);
  }

  private net(): Promise<ProvisioningNetwork> {
    if (this.network) return this.network;
    const opening = ProvisioningNetwork.open({
      dataDir: join(this.o.dataDir, 'provisioning'),
      bridge: this.o.bridge,
      cidr: this.o.cidr,
      httpPort: this.o.httpPort,
      deployDir: this.o.deployDir,
    });
    // A failed start is tried again at the next step.
    opening.catch(() => {
      if (this.network === opening) this.network = undefined;
    });
    this.network = opening;
    return opening;
  }

  private nodeOf(spec: InstanceSpec): string {
    const node = (spec as InstanceSpec & { node?: string | null }).node;
    if (!node) throw new Error('this metal instance has no node');
    this.placed.set(spec.id, node);
    return node;
  }

  private worker(id: string): NodeWorker | undefined {
    const node = this.placed.get(id);
    return node ? this.conductor.workers.get(node) : undefined;
  }

  /**
   * Deploys the instance to its node (`deploying`), or powers an already
   * deployed node on again from its disk. Resolves once the node's own OS is up.
   */
  async start(spec: InstanceSpec, progress?: (message: string) => void): Promise<void> {
    const log = this.o.log ?? (() => undefined);
    const nodeId = this.nodeOf(spec);
    const known = this.conductor.workers.get(nodeId);
    if (known?.node.provisionState === 'active' && known.node.instance === spec.id) {
      const bmc = known.bmc();
      known.console.reset(spec.id);
      await bmc.setPower('off');
      await bmc.setBootDevice('disk', true);
      await bmc.setPower('on', 'off');
      if (announcesItself(spec.image)) await known.console.waitFor(OS_UP, AbortSignal.timeout(300_000), true);
      return;
    }
    const wait = AbortSignal.timeout(60_000);
    const w = await this.conductor.worker(nodeId, 'deploying', wait);
    const node = w.node;
    if (!node.stepStartedAt) throw new Error(`node ${node.name} has no deploy under way`);
    const key = `deploying@${node.stepStartedAt}`;
    const deadline = node.stepDeadlineAt ? Date.parse(node.stepDeadlineAt) : Date.now() + 1_200_000;
    const stepStartedAt = node.stepStartedAt;
    let failure: string | undefined;
    await w.run(key, deadline, async signal => {
      const began = Date.now();
      const phases = new Phases();
      try {
        await this.deploy(w, spec as InstanceSpec<MetalFields>, signal, progress ?? (() => undefined), phases);
        log('node step done', {
          node: node.name,
          step: 'deploying',
          instance: spec.id,
          ms: Date.now() - began,
          ...phases.ms,
        });
        await this.conductor.deliver(nodeId, { step: 'deploying', stepStartedAt, ok: true });
      } catch (err) {
        if (signal.aborted && signal.reason instanceof Error && signal.reason.message === 'the node moved on') {
          failure = 'the node moved on (its deploy was aborted)';
          return;
        }
        failure = describe(err, signal, 'deploy', w.phase);
        log('node step failed', {
          node: node.name,
          step: 'deploying',
          instance: spec.id,
          message: failure,
          ...phases.ms,
        });
        await w
          .bmc()
          .setPower('off')
          .catch(() => undefined);
        await this.conductor.deliver(nodeId, { step: 'deploying', stepStartedAt, ok: false, message: failure });
      }
    });
    if (failure) throw new ApiError('unavailable', `deploy failed: ${failure}`);
  }

  /**
   * Phases: image (built or found in the cache), configDrive, the ramdisk's
   * (arm, powerOn, ramdiskBoot, deploy: the write, powerOff), diskPowerOn,
   * diskBoot (until the node's OS is up).
   */
  private async deploy(
    w: NodeWorker,
    spec: InstanceSpec<MetalFields>,
    signal: AbortSignal,
    progress: (message: string) => void,
    phases: Phases,
  ): Promise<void> {
    const dir = join(this.o.dataDir, 'instances', spec.id);
    mkdirSync(dir, { recursive: true });
    // The instance's record begins with its deploy: the ramdisk's work, then its OS.
    w.console.reset(spec.id);
    const cacheDir = join(this.o.dataDir, 'images');
    let image: { path: string };
    if (isDiskImageUrl(spec.image)) {
      w.phase = 'fetching the disk image';
      progress('fetching the disk image');
      const disk = w.hardware?.disks[0]?.sizeBytes;
      image = await fetchDiskImage({ url: spec.image, cacheDir, maxBytes: disk ?? DISK_IMAGE_MAX_BYTES, signal });
    } else {
      w.phase = 'building the image disk';
      progress(`preparing ${spec.image} for bare metal`);
      image = await buildWholeDiskImage({
        image: spec.image,
        dockerSocket: this.o.dockerSocket,
        registryAuth: this.o.registryAuth,
        cacheDir,
        kernelDir: this.o.kernelDir,
        progress,
      });
    }
    phases.mark('image');
    if (signal.aborted) throw signal.reason;
    const drive = await buildConfigDrive(dir, {
      instanceId: spec.id,
      hostname: spec.name,
      sshKeys: spec.cloudInit?.sshAuthorizedKeys ?? [],
      ...(spec.cloudInit?.userData !== undefined ? { userData: spec.cloudInit.userData } : {}),
      command: [...spec.command, ...spec.args],
      env: spec.env,
      ...(spec.workingDir ? { workingDir: spec.workingDir } : {}),
    });
    phases.mark('configDrive');
    const net = await this.net();
    const imageUrl = net.serveFile(image.path);
    const driveUrl = net.serveFile(drive);
    const bmc = w.bmc();
    try {
      progress('writing the image to the node');
      const { result } = await this.conductor.ramdisk(
        w,
        { action: 'deploy', imageUrl, configDriveUrl: driveUrl },
        signal,
        // The disk is the next boot's device: set while the image is written, not after.
        { phases, meanwhile: () => bmc.setBootDevice('disk', true) },
      );
      if (!result.ok) throw new Error(result.message || 'the ramdisk could not write the image');
    } finally {
      net.unserveFile(imageUrl);
      net.unserveFile(driveUrl);
    }
    progress('booting the node from its disk');
    await bmc.setPower('on', 'off');
    phases.mark('diskPowerOn');
    if (announcesItself(spec.image)) {
      w.phase = 'waiting for the node to boot from its disk';
      await w.console.waitFor(OS_UP, signal, true);
      phases.mark('diskBoot');
    }
    w.phase = '';
  }

  async stop(id: string): Promise<void> {
    await this.worker(id)?.bmc().setPower('off');
  }

  /** The node is powered off; the server then undeploys and cleans it (the nodes controller). */
  async destroy(id: string): Promise<void> {
    const w = this.worker(id);
    if (w && (w.node.instance === id || w.node.instance === null)) {
      w.abort();
      await w
        .bmc()
        .setPower('off')
        .catch(() => undefined);
    }
    this.placed.delete(id);
  }

  async inspect(id: string): Promise<Observed> {
    const w = this.worker(id);
    if (!w || w.node.instance !== id || w.node.provisionState !== 'active') return { state: 'absent' };
    const exit = w.console.owner() === id ? EXIT.exec(w.console.recorded()) : null;
    const power = await w
      .bmc()
      .power()
      .catch(() => undefined);
    if (exit) return { state: 'stopped', exitCode: Number(exit[1]) };
    if (power === 'off') return { state: 'stopped', exitCode: null, message: 'the node is powered off' };
    return { state: 'running' };
  }

  async waitExit(id: string): Promise<number> {
    const w = this.worker(id);
    if (!w) throw new Error(`no node holds ${id}`);
    for (;;) {
      const signal = AbortSignal.timeout(5000);
      const m = await w.console.waitFor(EXIT, signal, true).catch(() => undefined);
      if (m) return Number(m[1]);
      if (
        (await w
          .bmc()
          .power()
          .catch(() => 'on')) === 'off'
      )
        return 0;
    }
  }

  async list(): Promise<string[]> {
    return [...this.conductor.workers.values()].flatMap(w => (w.node.instance ? [w.node.instance] : []));
  }

  async logs(id: string, opts: LogOptions, signal: AbortSignal): Promise<AsyncIterable<OutputChunk>> {
    const w = this.worker(id);
    if (!w) throw conflict('the instance has no node on this conductor yet');
    return follow(w, id, opts, signal);
  }

  async console(id: string): Promise<ExecSession> {
    const w = this.worker(id);
    if (!w) throw conflict('the instance has no node on this conductor yet');
    if (w.console.owner() !== id)
      throw conflict("the instance's deploy has not begun: its node has nothing to show yet");
    const queue: Buffer[] = [];
    let wake: (() => void) | undefined;
    let closed = false;
    const off = w.console.listen(d => {
      queue.push(d);
      wake?.();
    });
    async function* output(): AsyncIterable<OutputChunk> {
      while (!closed) {
        const d = queue.shift();
        if (d) yield { stream: 'stdout', data: d };
        else await new Promise<void>(r => (wake = r));
      }
    }
    return {
      output: output(),
      write: data => w.console.write(data),
      closeStdin: () => undefined,
      resize: async () => undefined,
      exitCode: async () => 0,
      close: () => {
        closed = true;
        off();
        wake?.();
      },
    };
  }

  async pause(): Promise<void> {
    throw conflict('a bare-metal node cannot be paused');
  }

  async resume(): Promise<void> {
    throw conflict('a bare-metal node cannot be paused');
  }

  async exec(): Promise<ExecSession> {
    throw conflict(
      'exec runs a process in a container; a metal node has its serial console (strata logs, strata console)',
    );
  }
}

/**
 * The node's console record, once it is this instance's (its deploy has
 * begun): what is there (the last `tail` lines), then what comes, until the
 * instance's command has printed its exit code or the node is another's. A
 * new record of the instance (its node powered on again) is read from its start.
 */
async function* follow(w: NodeWorker, id: string, opts: LogOptions, signal: AbortSignal): AsyncIterable<OutputChunk> {
  while (w.console.owner() !== id) {
    if (!opts.follow || signal.aborted) return;
    await sleep(200, signal);
  }
  let offset = 0;
  let generation = w.console.generation;
  const text = w.console.recorded();
  if (opts.tail !== undefined) {
    const lines = text.split('\n');
    const keep = lines.slice(Math.max(0, lines.length - 1 - opts.tail)).join('\n');
    offset = Buffer.byteLength(text) - Buffer.byteLength(keep);
  }
  // Whether the command has printed its exit code: the record is read whole
  // once, then only what is read anyway, with the end of the last read (a
  // marker may span two reads).
  let exited = EXIT.test(text);
  let carry = '';
  for (;;) {
    if (w.console.owner() !== id) return;
    if (w.console.generation !== generation) {
      generation = w.console.generation;
      offset = 0;
      exited = false;
      carry = '';
    }
    const data = w.console.read(offset);
    if (data.length > 0) {
      offset += data.length;
      const seen = carry + data.toString('utf8');
      exited ||= EXIT.test(seen);
      carry = seen.slice(-64);
      yield { stream: 'stdout', data };
      continue;
    }
    if (!opts.follow || signal.aborted || exited) return;
    await sleep(200, signal);
  }
}
