// The VM driver: QEMU started directly and controlled over QMP. Each instance
// has a directory holding everything made for it (a qcow2 overlay on the
// image's base, the config disk for the guest init, the QMP and console
// sockets, the serial log, QEMU's pidfile). QEMU daemonizes, so it outlives
// the agent; a restarted agent finds it again by its pidfile and never starts
// a second one. The guest boots Strata's kernel and initramfs (scripts/vm.sh).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ApiError, conflict } from '../../lib/errors.ts';
import { assertImageRef } from '../../model/image-ref.ts';
import { vmCapabilities } from './capabilities.ts';
import type { Capabilities } from '../../model/capabilities.ts';
import { sleep } from '../../lib/time.ts';
import { accelArgs, kvmBoots, type Accelerator } from '../../lib/qemu-accel.ts';
import type { Driver, ExecSession, InstanceSpec, LogOptions, Observed, OutputChunk } from '../driver.ts';
import { buildSeed } from './cloud-init.ts';
import type { Machine, VmFields } from './fields.ts';
import { guestConfigDisk, type GuestConfig } from './guest-config.ts';
import { ociDisk, processArgv, type ImageProcess, type OciSource } from './oci-disk.ts';
import {
  createTap,
  deleteTap,
  ensureBridge,
  gatewayOf,
  Leases,
  macOf,
  parseCidr,
  tapName,
  type Subnet,
} from './network.ts';
import { Qmp } from './qmp.ts';

const run = promisify(execFile);

export interface VmDriverOptions {
  /** The agent's directory for instances (DATA/vm). */
  dataDir: string;
  /** Kernel, initramfs and image store (scripts/vm.sh), default /var/lib/strata-host/vm. */
  assetsDir: string;
  qemu?: string;
  /** How long a guest may take to say it is up. */
  bootTimeoutSeconds?: number;
  /** The container runtime, for OCI images booted as VMs. */
  oci?: OciSource | undefined;
  /** The host bridge VMs are attached to, and its subnet (the host takes the first address). */
  bridge?: string;
  subnet?: string;
}

const READY = 'strata-guest: ready';
const EXIT = /strata-exit: (\d+)/g;

interface InstanceFiles {
  dir: string;
  overlay: string;
  config: string;
  qmp: string;
  console: string;
  serial: string;
  pidfile: string;
  meta: string;
}

interface Meta {
  id: string;
  host: string;
  mode: GuestConfig['mode'];
  accelerator: Accelerator;
  /** The guest's address on the bridge, leased host-wide, and its tap. */
  ip: string;
  tap: string;
}

export class VmDriver implements Driver {
  readonly name = 'vm' as const;
  readonly capabilities: Capabilities = vmCapabilities;
  private readonly o: VmDriverOptions;
  private accel: Promise<Accelerator> | undefined;
  private readonly subnet: Subnet;
  private readonly bridge: string;
  private readonly leases: Leases;

  constructor(o: VmDriverOptions) {
    this.o = o;
    this.bridge = o.bridge ?? 'strata0';
    this.subnet = parseCidr(o.subnet ?? '10.99.0.0/24');
    this.leases = new Leases(join('/run/strata-vm-leases', this.bridge));
  }

  private get qemu(): string {
    return this.o.qemu ?? 'qemu-system-x86_64';
  }
  private get kernel(): string {
    return join(this.o.assetsDir, 'kernel', 'vmlinux');
  }
  private get initramfs(): string {
    return join(this.o.assetsDir, 'kernel', 'initramfs.cpio.gz');
  }

  private files(id: string): InstanceFiles {
    const dir = join(this.o.dataDir, id);
    return {
      dir,
      overlay: join(dir, 'root.qcow2'),
      config: join(dir, 'config.img'),
      qmp: join(dir, 'qmp.sock'),
      console: join(dir, 'console.sock'),
      serial: join(dir, 'serial.log'),
      pidfile: join(dir, 'qemu.pid'),
      meta: join(dir, 'instance.json'),
    };
  }

  async probe(): Promise<boolean> {
    if (!existsSync(this.kernel) || !existsSync(this.initramfs)) return false;
    try {
      await run(this.qemu, ['--version']);
    } catch {
      return false;
    }
    mkdirSync(this.o.dataDir, { recursive: true, mode: 0o700 });
    await this.accelerator();
    return true;
  }

  /**
   * KVM when a guest really boots under it, TCG otherwise. Decided by trying
   * (a /dev/kvm that cannot run guests exists on some hosts), once per agent.
   */
  accelerator(): Promise<Accelerator> {
    this.accel ??= (async () => {
      if (!existsSync('/dev/kvm')) return 'tcg';
      const dir = join(this.o.dataDir, '.probe');
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const config = join(dir, 'config.img');
      writeFileSync(
        config,
        guestConfigDisk({ hostname: 'probe', mode: 'run', command: [], env: {}, workingDir: '/', probe: true }),
      );
      const args = [...this.machineArgs('kvm', 1, 128), '-serial', 'stdio', ...configDrive(config)];
      const ok = await kvmBoots(this.qemu, args, 'strata-guest: probe');
      rmSync(dir, { recursive: true, force: true });
      return ok ? 'kvm' : 'tcg';
    })();
    return this.accel;
  }

  private machineArgs(accel: Accelerator, vcpus: number, memoryMib: number, machine: Machine = 'microvm'): string[] {
    const append = ['console=ttyS0', 'panic=-1', 'quiet'];
    // microvm has no clock to calibrate against under TCG: tell the kernel the TSC rate.
    const khz = tscKhz();
    if (khz) append.push(`tsc_early_khz=${khz}`);
    return [
      '-machine',
      machine === 'q35' ? 'q35' : 'microvm,acpi=on',
      // Under TCG the translation cache (TCG_CACHE_MIB) is what placement
      // counts (hostMemoryOverheadMib in src/kinds/vm/index.ts).
      ...accelArgs(accel),
      // A reset the guest asks for (its init exited and the kernel panicked,
      // or it rebooted itself) ends QEMU: the instance stops and says why.
      // Only a restart the user asks for resets it (see reboot()).
      '-action',
      'reboot=shutdown',
      '-smp',
      String(vcpus),
      '-m',
      `${memoryMib}M`,
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      '-kernel',
      this.kernel,
      '-initrd',
      this.initramfs,
      '-append',
      append.join(' '),
    ];
  }

  private readPid(f: InstanceFiles): number | undefined {
    try {
      const pid = Number(readFileSync(f.pidfile, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 0) return undefined;
      // The pid must still be this instance's QEMU, not a recycled number.
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmdline.includes(f.dir) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  private meta(f: InstanceFiles): Meta | undefined {
    try {
      return JSON.parse(readFileSync(f.meta, 'utf8')) as Meta;
    } catch {
      return undefined;
    }
  }

  async list(hostId: string): Promise<string[]> {
    if (!existsSync(this.o.dataDir)) return [];
    return readdirSync(this.o.dataDir).filter(id => !id.startsWith('.') && this.meta(this.files(id))?.host === hostId);
  }

  async start(spec: InstanceSpec<VmFields>, progress?: (message: string) => void): Promise<void> {
    const f = this.files(spec.id);
    if (this.readPid(f)) return;
    const accel = await this.accelerator();
    const { path: base, process: image } = await this.resolveImage(spec.image, progress);
    const info = await imageInfo(base);
    mkdirSync(f.dir, { recursive: true, mode: 0o700 });
    const specArgv = [...spec.command, ...spec.args];
    // An OCI image runs its entrypoint/cmd like a container; a disk image without a command boots its own init.
    const argv = image ? processArgv(image, specArgv) : specArgv;
    if (image && argv.length === 0) throw new Error(`image ${spec.image} has no entrypoint or command: give one`);
    const mode: GuestConfig['mode'] = argv.length > 0 ? 'run' : 'init';
    // The address stays the instance's across stop and start.
    const before = this.meta(f);
    const ip =
      before?.ip && this.leases.holds(before.ip, spec.id) ? before.ip : this.leases.lease(this.subnet, spec.id, f.dir);
    const tap = tapName(spec.id);
    writeFileSync(
      f.meta,
      JSON.stringify({ id: spec.id, host: spec.host ?? '', mode, accelerator: accel, ip, tap } satisfies Meta),
    );
    const fresh = !existsSync(f.overlay);
    if (fresh) {
      // Copy-on-write on the shared base, which never changes. The disk is at
      // least the image's size; the root disk size of the spec when larger.
      const size = Math.max(info.virtualSize, spec.resources.diskGib * 1024 ** 3);
      progress?.('creating the root disk');
      await run('qemu-img', [
        'create',
        '-q',
        '-f',
        'qcow2',
        '-b',
        base,
        '-F',
        info.format,
        f.overlay,
        String(size),
      ]).catch((err: unknown) => {
        throw new Error(`could not create the root disk: ${stderrOf(err)}`);
      });
    }
    writeFileSync(
      f.config,
      guestConfigDisk({
        hostname: spec.name,
        mode,
        command: argv,
        env: { ...image?.env, ...spec.env },
        workingDir: spec.workingDir || image?.workingDir || '/',
        ip: `${ip}/${this.subnet.prefix}`,
        gateway: gatewayOf(this.subnet),
      }),
    );
    // virtio on microvm's MMIO transport, or on PCI for q35.
    const bus =
      spec.machine === 'q35'
        ? { blk: 'virtio-blk-pci', net: 'virtio-net-pci' }
        : { blk: 'virtio-blk-device', net: 'virtio-net-device' };
    let seed: string | undefined;
    if (spec.cloudInit) {
      seed = join(f.dir, 'seed.iso');
      await buildSeed(seed, spec.id, spec.name, spec.cloudInit);
    }
    // Each run's console output starts a fresh log; the previous run's is kept beside it.
    if (existsSync(f.serial)) renameSync(f.serial, `${f.serial}.1`);
    for (const p of [f.qmp, f.console, f.pidfile]) rmSync(p, { force: true });
    writeFileSync(f.serial, '');
    const args = [
      '-name',
      `strata-${spec.name},process=strata-vm-${spec.id}`,
      ...this.machineArgs(accel, spec.resources.vcpus, spec.resources.memoryMib, spec.machine),
      '-chardev',
      `socket,id=console,path=${f.console},server=on,wait=off,logfile=${f.serial}`,
      '-serial',
      'chardev:console',
      '-drive',
      `id=root,file=${f.overlay},format=qcow2,if=none,discard=unmap`,
      '-device',
      `${bus.blk},drive=root,serial=strata-root`,
      ...configDrive(f.config, bus.blk),
      ...(seed
        ? [
            '-drive',
            `id=seed,file=${seed},format=raw,if=none,readonly=on`,
            '-device',
            `${bus.blk},drive=seed,serial=cidata`,
          ]
        : []),
      '-netdev',
      `tap,id=net0,ifname=${tap},script=no,downscript=no`,
      '-device',
      `${bus.net},netdev=net0,mac=${macOf(spec.id)}`,
      '-qmp',
      `unix:${f.qmp},server=on,wait=off`,
      '-pidfile',
      f.pidfile,
    ];
    progress?.(`booting (${accel})`);
    try {
      await ensureBridge(this.bridge, this.subnet);
      await createTap(tap, this.bridge);
      const child = this.launch(f, args);
      await this.waitBooted(spec.id, 0, child);
    } catch (err) {
      // What this start made goes; a disk from an earlier run stays (it is the VM's data).
      await this.kill(f);
      for (const p of [f.config, f.qmp, f.console, join(f.dir, 'seed.iso'), ...(fresh ? [f.overlay] : [])])
        rmSync(p, { force: true });
      await deleteTap(tap);
      if (fresh) this.leases.release(ip, spec.id);
      throw err;
    }
  }

  private launch(f: InstanceFiles, args: string[]): ChildProcess {
    // Detached in its own session, so it outlives the agent; while the agent
    // lives it is QEMU's parent and reaps it (a daemonized QEMU would be left
    // to a PID 1 that may never reap it). Its own errors go to qemu.log.
    const logFd = openSync(join(f.dir, 'qemu.log'), 'w');
    try {
      const child = spawn(this.qemu, args, { cwd: f.dir, detached: true, stdio: ['ignore', logFd, logFd] });
      child.on('error', () => undefined);
      child.unref();
      return child;
    } finally {
      closeSync(logFd);
    }
  }

  /** Stops the virtual CPUs (QMP stop): the guest is frozen, memory and devices kept. */
  async pause(id: string): Promise<void> {
    const f = this.files(id);
    if (!this.readPid(f)) throw conflict('the VM is not running');
    await this.qmp(f, 'stop');
  }

  async resume(id: string): Promise<void> {
    const f = this.files(id);
    if (!this.readPid(f)) throw conflict('the VM is not running');
    await this.qmp(f, 'cont');
  }

  /** A hard reset of the machine (QMP system_reset): same QEMU, same disk; up again when the guest says so. */
  async reboot(id: string): Promise<void> {
    const f = this.files(id);
    if (!this.readPid(f)) throw conflict('the VM is not running');
    const from = existsSync(f.serial) ? statSync(f.serial).size : 0;
    // This reset is asked for: let it reset rather than end QEMU, just for it.
    await this.qmp(f, 'set-action', { reboot: 'reset' });
    try {
      await this.qmp(f, 'system_reset');
      await this.waitBooted(id, from);
    } finally {
      await this.qmp(f, 'set-action', { reboot: 'shutdown' }).catch(() => undefined);
    }
  }

  /**
   * Until the guest init says it is up; a guest that never does is stopped
   * and the start fails. `child` is the QEMU this agent just launched (a
   * reboot waits on one that may be an earlier agent's).
   */
  private async waitBooted(id: string, fromByte = 0, child?: ChildProcess): Promise<void> {
    const f = this.files(id);
    const timeout = (this.o.bootTimeoutSeconds ?? 60) * 1000;
    const end = Date.now() + timeout;
    const ended = () =>
      child
        ? child.exitCode !== null || child.signalCode !== null || (existsSync(f.pidfile) && !this.readPid(f))
        : !this.readPid(f);
    while (Date.now() < end) {
      const log = readFrom(f.serial, fromByte);
      if (log.includes(READY)) return;
      if (ended()) {
        const qemuSaid = readTail(join(f.dir, 'qemu.log'), 4096).trim().split('\n').slice(-2).join('; ');
        const why =
          [...log.matchAll(/strata-guest: (.*)/g)].at(-1)?.[1] ?? (qemuSaid ? `QEMU: ${qemuSaid}` : undefined);
        throw new Error(`the guest stopped while booting${why ? `: ${why}` : ''}`);
      }
      await sleep(50);
    }
    await this.kill(f);
    throw new Error(`the guest did not boot within ${timeout / 1000} s`);
  }

  async stop(id: string, graceSeconds: number): Promise<void> {
    const f = this.files(id);
    if (!this.readPid(f)) return;
    if (graceSeconds > 0) {
      // A paused guest cannot hear the power button: let it run first.
      await this.qmp(f, 'cont').catch(() => undefined);
      // Politely: the ACPI power button, which the guest init turns into SIGTERM.
      await this.qmp(f, 'system_powerdown').catch(() => undefined);
      if (await this.exited(f, graceSeconds * 1000)) return;
    }
    // Hard: switched off.
    await this.kill(f);
  }

  /** Hard stop: QEMU quits at once (the guest gets no say), SIGKILL if QMP does not answer. */
  private async kill(f: InstanceFiles): Promise<void> {
    const pid = this.readPid(f);
    if (!pid) return;
    await this.qmp(f, 'quit').catch(() => undefined);
    if (await this.exited(f, 2000)) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await this.exited(f, 2000);
  }

  private async exited(f: InstanceFiles, withinMs: number): Promise<boolean> {
    const end = Date.now() + withinMs;
    while (Date.now() < end) {
      if (!this.readPid(f)) return true;
      await sleep(50);
    }
    return !this.readPid(f);
  }

  private async qmp<T>(f: InstanceFiles, command: string, args?: Record<string, unknown>): Promise<T> {
    const q = await Qmp.connect(f.qmp, 2000);
    try {
      return await q.execute<T>(command, args);
    } finally {
      q.close();
    }
  }

  async destroy(id: string): Promise<void> {
    const f = this.files(id);
    await this.kill(f);
    const meta = this.meta(f);
    if (meta?.tap) await deleteTap(meta.tap);
    if (meta?.ip) this.leases.release(meta.ip, id);
    rmSync(f.dir, { recursive: true, force: true });
  }

  async inspect(id: string): Promise<Observed> {
    const f = this.files(id);
    const meta = this.meta(f);
    if (!meta) return { state: 'absent' };
    if (this.readPid(f)) {
      const status = await this.qmp<{ status?: string }>(f, 'query-status').catch(() => undefined);
      return {
        state: status?.status === 'paused' ? 'paused' : 'running',
        address: meta.ip ?? null,
        ports: [],
        accelerator: meta.accelerator,
      };
    }
    const code = exitCodeOf(readTail(f.serial, 1 << 20));
    const panic = /Kernel panic - not syncing: (.*)/.exec(readTail(f.serial, 1 << 16))?.[1]?.trim();
    if (code === undefined && panic)
      return { state: 'failed', exitCode: null, message: `the guest kernel panicked: ${panic}` };
    if (code === undefined) {
      if (!existsSync(f.serial) || meta.mode === 'init') return { state: 'stopped', exitCode: null };
      return { state: 'failed', exitCode: null, message: 'the guest stopped without reporting an exit code' };
    }
    if (code === 0) return { state: 'stopped', exitCode: 0 };
    return {
      state: 'failed',
      exitCode: code,
      message: code === 125 ? guestComplaint(readTail(f.serial, 1 << 16)) : `exited with code ${code}`,
    };
  }

  async waitExit(id: string): Promise<number> {
    const f = this.files(id);
    if (!this.meta(f)) throw new Error(`no VM for ${id}`);
    while (this.readPid(f)) await sleep(250);
    return exitCodeOf(readTail(f.serial, 1 << 20)) ?? 0;
  }

  async logs(id: string, opts: LogOptions, signal: AbortSignal): Promise<AsyncIterable<OutputChunk>> {
    const f = this.files(id);
    if (!this.meta(f))
      throw new ApiError('conflict', 'the instance has no VM on its host (it has not been started there)');
    return this.follow(f, opts, signal);
  }

  /** The serial console's log: what is there (the last `tail` lines), then what comes while the VM runs. */
  private async *follow(f: InstanceFiles, opts: LogOptions, signal: AbortSignal): AsyncIterable<OutputChunk> {
    let offset = 0;
    if (opts.tail !== undefined && existsSync(f.serial)) {
      const text = readTail(f.serial, 1 << 20);
      const lines = text.split('\n');
      const keep = lines.slice(Math.max(0, lines.length - 1 - opts.tail)).join('\n');
      offset = statSync(f.serial).size - Buffer.byteLength(keep);
    }
    for (;;) {
      const size = existsSync(f.serial) ? statSync(f.serial).size : 0;
      if (size > offset) {
        const fd = openSync(f.serial, 'r');
        try {
          const buf = Buffer.alloc(Math.min(size - offset, 1 << 20));
          const n = readSync(fd, buf, 0, buf.length, offset);
          offset += n;
          yield { stream: 'stdout', data: buf.subarray(0, n) };
        } finally {
          closeSync(fd);
        }
        continue;
      }
      if (!opts.follow || signal.aborted || !this.readPid(f)) return;
      await sleep(100, signal);
    }
  }

  /** The serial console, live: what the guest writes, and keys for it. QEMU serves one client at a time. */
  async console(id: string): Promise<ExecSession> {
    const f = this.files(id);
    if (!this.readPid(f)) throw conflict('the VM is not running');
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = connect(f.console);
      s.once('connect', () => resolve(s));
      s.once('error', err => reject(new ApiError('unavailable', `the console is not available: ${err.message}`)));
    });
    sock.on('error', () => undefined);
    async function* output(): AsyncIterable<OutputChunk> {
      for await (const data of sock as AsyncIterable<Buffer>) yield { stream: 'stdout', data };
    }
    return {
      output: output(),
      write: data => void sock.write(data),
      // The console stays open for others; end of input only ends this session's keys.
      closeStdin: () => undefined,
      resize: async () => undefined,
      exitCode: async () => 0,
      close: () => sock.destroy(),
    };
  }

  async exec(): Promise<ExecSession> {
    throw conflict('exec runs a process in a container; a VM has its serial console (strata logs, strata console)');
  }

  /** A disk of the image store by name, or else an OCI image turned into a disk. */
  private async resolveImage(
    ref: string,
    progress?: (message: string) => void,
  ): Promise<{ path: string; process?: ImageProcess }> {
    assertImageRef(ref);
    const store = join(this.o.assetsDir, 'images');
    const name = ref.replace(/:latest$/, '');
    for (const candidate of [name, `${name}.qcow2`, `${name}.raw`, `${name}.img`]) {
      // A file directly in the store, never a path out of it.
      if (!/^[a-z0-9][a-z0-9._-]*$/.test(candidate) || candidate.includes('..')) break;
      const p = join(store, candidate);
      if (existsSync(p)) return { path: p };
    }
    if (!this.o.oci) throw new Error(`image ${ref} is not in this host's image store (${store}: qcow2 or raw files)`);
    try {
      return await ociDisk(this.o.oci, ref, join(this.o.dataDir, '.images'), progress);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new Error(
        `image ${ref} is not in this host's image store (${store}) and could not be used as an OCI image: ${why}`,
      );
    }
  }
}

function configDrive(path: string, device = 'virtio-blk-device'): string[] {
  return [
    '-drive',
    `id=config,file=${path},format=raw,if=none,readonly=on`,
    '-device',
    `${device},drive=config,serial=strata-config`,
  ];
}

async function imageInfo(path: string): Promise<{ format: string; virtualSize: number }> {
  try {
    const { stdout } = await run('qemu-img', ['info', '--output=json', path]);
    const info = JSON.parse(stdout) as { format?: string; 'virtual-size'?: number };
    if (!info.format || !info['virtual-size']) throw new Error('no format or size');
    if (info.format === 'qcow2') await run('qemu-img', ['check', '-q', path]);
    return { format: info.format, virtualSize: info['virtual-size'] };
  } catch (err) {
    throw new Error(`image ${path} is not a usable disk image: ${stderrOf(err)}`);
  }
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr?.trim() || e.message || String(err)).split('\n').slice(0, 3).join('; ');
}

function readFrom(path: string, offset: number): string {
  try {
    const size = statSync(path).size;
    return readTail(path, Math.max(0, size - offset));
  } catch {
    return '';
  }
}

function readTail(path: string, bytes: number): string {
  try {
    const size = statSync(path).size;
    const fd = openSync(path, 'r');
    try {
      const n = Math.min(size, bytes);
      const buf = Buffer.alloc(n);
      readSync(fd, buf, 0, n, size - n);
      return buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

export function exitCodeOf(log: string): number | undefined {
  let code: number | undefined;
  for (const m of log.matchAll(EXIT)) code = Number(m[1]);
  return code;
}

function guestComplaint(log: string): string {
  const lines = [...log.matchAll(/strata-guest: (.*)/g)].map(m => m[1]);
  return lines.at(-1) ?? 'the guest init failed';
}

let khzCache: number | undefined;
function tscKhz(): number | undefined {
  if (khzCache !== undefined) return khzCache || undefined;
  const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  khzCache = m?.[1] ? Math.round(Number(m[1]) * 1000) : 0;
  return khzCache || undefined;
}
