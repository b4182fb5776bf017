// One emulated server: a QEMU machine (q35, firmware boot, serial console on
// a TCP socket and in serial.log) whose whole state lives in files in its
// directory, so that every controller of it (the IPMI simulator's chassis
// program, the Redfish emulator, the rig) shares this one implementation:
//   machine.json  what the machine is (fixed when the rig makes it)
//   disk.qcow2    its disk, kept across power cycles
//   qemu.pid      QEMU's pidfile: the machine is on while that QEMU lives
//   boot.json     the boot override: { device, persistent }
//   media.iso, media.json  the inserted virtual CD and the URL it came from
// QEMU daemonizes, so a machine outlives whoever powered it on.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { httpRequest } from '../../lib/http.ts';
import { accelArgs, type Accelerator } from '../../lib/qemu-accel.ts';
import { sleep } from '../../lib/time.ts';

const run = promisify(execFile);

export type BootTarget = 'pxe' | 'disk' | 'cd';

export interface MachineConfig {
  name: string;
  mac: string;
  /** The tap device (made by the rig, on its bridge). */
  tap: string;
  memoryMib: number;
  diskGib: number;
  /** 127.0.0.1:serialPort serves the serial console. */
  serialPort: number;
  accelerator: Accelerator;
  qemu: string;
}

export interface BootOverride {
  device: BootTarget | 'none';
  persistent: boolean;
}

export interface Media {
  image: string;
  inserted: boolean;
}

const ORDER: Record<BootOverride['device'], string> = { pxe: 'n', disk: 'c', cd: 'd', none: 'cn' };
/** How long QEMU gets to exit on SIGTERM before it is killed. */
const STOP_GRACE_MS = 5_000;

/** 52:54:00 (QEMU's prefix) and three bytes of the name's hash: the same name, the same MAC. */
export function macOf(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `52:54:00:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}`;
}

export class Machine {
  readonly dir: string;
  readonly config: MachineConfig;

  private constructor(dir: string, config: MachineConfig) {
    this.dir = dir;
    this.config = config;
  }

  /** Makes the machine's files (its disk only when missing: a disk outlives a rig). */
  static async create(dir: string, config: MachineConfig): Promise<Machine> {
    if (!/^[\w./-]+$/.test(dir)) throw new Error(`machine directory ${dir}: only letters, digits, . _ - /`);
    writeFileSync(join(dir, 'machine.json'), `${JSON.stringify(config, null, 2)}\n`);
    const m = new Machine(dir, config);
    if (!existsSync(m.disk)) await run('qemu-img', ['create', '-q', '-f', 'qcow2', m.disk, `${config.diskGib}G`]);
    return m;
  }

  static load(dir: string): Machine {
    return new Machine(dir, JSON.parse(readFileSync(join(dir, 'machine.json'), 'utf8')) as MachineConfig);
  }

  get disk(): string {
    return join(this.dir, 'disk.qcow2');
  }
  get serialLog(): string {
    return join(this.dir, 'serial.log');
  }
  get pidfile(): string {
    return join(this.dir, 'qemu.pid');
  }
  private get mediaFile(): string {
    return join(this.dir, 'media.iso');
  }

  /** The pid of this machine's QEMU, when it runs (checked against its command line, not just the pidfile). */
  pid(): number | undefined {
    try {
      const pid = Number(readFileSync(this.pidfile, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 0) return undefined;
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return cmdline.includes(this.pidfile) && !/^\d+ \(.*\) Z/.test(stat) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  power(): 'on' | 'off' {
    return this.pid() ? 'on' : 'off';
  }

  boot(): BootOverride {
    try {
      return JSON.parse(readFileSync(join(this.dir, 'boot.json'), 'utf8')) as BootOverride;
    } catch {
      return { device: 'none', persistent: true };
    }
  }

  setBoot(override: BootOverride): void {
    writeFileSync(join(this.dir, 'boot.json'), `${JSON.stringify(override)}\n`);
  }

  media(): Media | undefined {
    try {
      return JSON.parse(readFileSync(join(this.dir, 'media.json'), 'utf8')) as Media;
    } catch {
      return undefined;
    }
  }

  /** Idempotent: a second call while the first's QEMU starts finds QEMU's pidfile locked, and the machine on. */
  async powerOn(): Promise<void> {
    if (this.pid()) return;
    const boot = this.boot();
    const media = this.media()?.inserted ? this.mediaFile : undefined;
    const c = this.config;
    const serial = `socket,id=serial,server=on,wait=off,host=127.0.0.1,port=${c.serialPort},logfile=${this.serialLog},logappend=on`;
    const args = [
      '-name',
      c.name,
      // graphics=off: SeaBIOS and iPXE write to the serial console.
      '-machine',
      'q35,graphics=off',
      ...accelArgs(c.accelerator),
      '-smp',
      '1',
      '-m',
      `${c.memoryMib}M`,
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      '-drive',
      `file=${this.disk},if=virtio,format=qcow2`,
      '-netdev',
      `tap,id=net0,ifname=${c.tap},script=no,downscript=no`,
      '-device',
      `virtio-net-pci,netdev=net0,mac=${c.mac}`,
      '-chardev',
      serial,
      '-serial',
      'chardev:serial',
      ...(media ? ['-cdrom', media] : []),
      '-boot',
      `order=${ORDER[boot.device === 'cd' && !media ? 'none' : boot.device]}`,
      '-daemonize',
      '-pidfile',
      this.pidfile,
    ];
    try {
      await run(c.qemu, args, { timeout: 60_000 });
    } catch (e) {
      const stderr = String((e as { stderr?: string }).stderr ?? (e as Error).message).trim();
      // Another power on got there first: its QEMU holds the pidfile's lock (and the disk's).
      if (/lock/i.test(stderr) && (await this.started())) return;
      throw new Error(`${c.name}: QEMU did not start: ${stderr.slice(0, 500)}`);
    }
    // A one-time override is spent by the boot it chose.
    if (!boot.persistent) this.setBoot({ device: 'none', persistent: true });
  }

  /** Whether a QEMU started by someone else comes up (its pidfile names it) within a few seconds. */
  private async started(): Promise<boolean> {
    for (const end = Date.now() + 10_000; Date.now() < end; await sleep(50)) if (this.pid()) return true;
    return false;
  }

  /** Hard power off (QEMU ends at once; SIGTERM lets it close the disk image cleanly). */
  async powerOff(): Promise<void> {
    const pid = this.pid();
    if (!pid) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const deadline = Date.now() + STOP_GRACE_MS;
    while (this.pid()) {
      if (Date.now() > deadline) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
      await sleep(50);
    }
  }

  async reset(): Promise<void> {
    await this.powerOff();
    await this.powerOn();
  }

  /** Fetches the image (http or https, at most maxBytes) into the machine's directory; the next power on sees it. */
  async insertMedia(image: string, maxBytes: number): Promise<void> {
    const url = new URL(image);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('the image URL must be http or https');
    const res = await httpRequest(image, { method: 'GET', headers: {}, signal: AbortSignal.timeout(300_000) });
    if (!res.ok) throw new Error(`fetching the image: HTTP ${res.status}`);
    const part = `${this.mediaFile}.part`;
    let size = 0;
    try {
      await pipeline(
        res.body,
        async function* (chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            size += chunk.length;
            if (size > maxBytes) throw new Error(`the image is larger than ${maxBytes} bytes`);
            yield chunk;
          }
        },
        createWriteStream(part),
      );
    } catch (e) {
      rmSync(part, { force: true });
      throw e;
    }
    renameSync(part, this.mediaFile);
    writeFileSync(join(this.dir, 'media.json'), `${JSON.stringify({ image, inserted: true } satisfies Media)}\n`);
  }

  ejectMedia(): void {
    rmSync(join(this.dir, 'media.json'), { force: true });
    rmSync(this.mediaFile, { force: true });
  }
}
