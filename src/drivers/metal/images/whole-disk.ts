// One image, three isolation levels: the OCI image a container runs becomes a
// bare-metal node's whole disk. The layout boots from the node's own disk with
// no help from anyone: an MBR (syslinux's mbr.bin) with one bootable Linux
// partition from 1 MiB, ext4 labelled strata-root holding the image's files,
// and in its /boot Strata's kernel, an initrd (busybox, the kernel's drivers
// and guest/metal-init as PID 1) and extlinux. The config drive
// (config-drive.ts) carries what differs per instance, so one disk image
// serves every node deployed from that image; the deploy ramdisk adds it as
// a partition at the end of the node's disk, as it does for any disk image.
//
// Disks are cached by the image id and a hash of everything the builder puts
// in besides the image (metal-init, busybox, kernel, modules, this layout's
// version). A build happens in a private directory and is moved into the
// cache in one rename: the cache never holds half a disk.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ContainerDriver } from '../../container/driver.ts';
import type { RegistryAuth } from '../../container/registry-auth.ts';
import { exportRootfs, type OciSource, resolveOciImage } from '../../oci-rootfs.ts';
import { sweepAbandoned, workDirPrefix } from './abandoned.ts';
import { prepareRoot } from './root-layout.ts';
import { pipeline, run } from './run.ts';

/** Bumped whenever the layout below changes, so cached disks of the old layout are not reused. */
const LAYOUT_VERSION = 'whole-disk-3';
const MIB = 1024 * 1024;
/** The partition starts here: room for the MBR and the usual 1 MiB alignment. */
const PART_START = MIB;
const LABEL = 'strata-root';
const BUSYBOX = '/bin/busybox';
const MBR_BIN = '/usr/lib/syslinux/mbr/mbr.bin';
const METAL_INIT = new URL('../../../../guest/metal-init', import.meta.url).pathname;
/** The kernel command line: the serial console is how the host reads the node (strata-exit). */
export const KERNEL_APPEND = 'console=ttyS0,115200 panic=-1 quiet';

export interface WholeDiskOptions {
  /** An OCI image reference, pulled through the container runtime with its credentials. */
  image: string;
  /** The Docker API socket of the container runtime (Podman's here). */
  dockerSocket: string;
  registryAuth?: RegistryAuth;
  /** Where built disks are kept, one directory each. */
  cacheDir: string;
  /** The kernel directory scripts/vm.sh makes: vmlinuz, version, modules/lib/modules/VERSION. */
  kernelDir: string;
  progress?: (message: string) => void;
}

export interface WholeDisk {
  /** A raw disk image, to be written to the node's first disk as it is. */
  path: string;
  sizeBytes: number;
  /** `sha256:HEX` of the disk image's bytes: what the node's disk must hold once written. */
  digest: string;
}

interface Meta {
  image: string;
  imageId: string;
  sizeBytes: number;
  digest: string;
  builtAt: string;
}

const building = new Map<string, Promise<WholeDisk>>();

export async function buildWholeDiskImage(opts: WholeDiskOptions): Promise<WholeDisk> {
  const kernel = kernelFiles(opts.kernelDir);
  const oci = new ContainerDriver({
    socketPath: opts.dockerSocket,
    registryAuth: opts.registryAuth,
    isolation: null,
  });
  let imageId: string;
  try {
    ({ id: imageId } = await resolveOciImage(oci, opts.image, opts.progress));
  } catch (err) {
    throw new Error(`cannot build a disk image from ${opts.image}: ${messageOf(err)}`);
  }
  await sweepAbandoned(opts.cacheDir);
  const key = `${imageId.slice(0, 32)}-${inputsHash(kernel)}`;
  const dir = join(opts.cacheDir, key);
  const cached = readCached(dir);
  if (cached) return cached;
  // One build per disk at a time; the others wait for it.
  let job = building.get(dir);
  if (!job) {
    job = build(oci, opts, kernel, imageId, dir).finally(() => building.delete(dir));
    building.set(dir, job);
  }
  return job;
}

interface KernelFiles {
  vmlinuz: string;
  version: string;
  /** The lib/ tree (lib/modules/VERSION) that goes into the initrd as it is. */
  modulesLib: string;
}

function kernelFiles(kernelDir: string): KernelFiles {
  const vmlinuz = join(kernelDir, 'vmlinuz');
  const modulesLib = join(kernelDir, 'modules', 'lib');
  let version: string;
  try {
    version = readFileSync(join(kernelDir, 'version'), 'utf8').trim();
  } catch {
    throw new Error(`no kernel in ${kernelDir} (scripts/vm.sh kernel makes one)`);
  }
  for (const p of [vmlinuz, join(modulesLib, 'modules', version), METAL_INIT, BUSYBOX, MBR_BIN])
    if (!existsSync(p)) throw new Error(`the disk image builder needs ${p}, which is missing`);
  return { vmlinuz, version, modulesLib };
}

/** What the builder puts in besides the image: a change to any of it makes a new disk. */
function inputsHash(k: KernelFiles): string {
  const h = createHash('sha256').update(LAYOUT_VERSION).update(KERNEL_APPEND).update(k.version);
  for (const f of [METAL_INIT, BUSYBOX, k.vmlinuz, MBR_BIN]) h.update(readFileSync(f));
  for (const f of listFiles(k.modulesLib)) h.update(f).update(readFileSync(join(k.modulesLib, f)));
  return h.digest('hex').slice(0, 16);
}

function listFiles(root: string, rel = ''): string[] {
  return readdirSync(join(root, rel), { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap(e => {
      const r = join(rel, e.name);
      return e.isDirectory() ? listFiles(root, r) : [r];
    });
}

function readCached(dir: string): WholeDisk | undefined {
  try {
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Meta;
    const path = join(dir, 'disk.raw');
    if (statSync(path).size !== meta.sizeBytes) return undefined;
    return { path, sizeBytes: meta.sizeBytes, digest: meta.digest };
  } catch {
    return undefined;
  }
}

async function build(
  oci: OciSource,
  opts: WholeDiskOptions,
  kernel: KernelFiles,
  imageId: string,
  dir: string,
): Promise<WholeDisk> {
  mkdirSync(opts.cacheDir, { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(opts.cacheDir, workDirPrefix('build')));
  const mounts: Mounted = { loop: undefined, mountpoint: undefined };
  try {
    const started = Date.now();
    opts.progress?.(`turning ${opts.image} into a bare-metal disk image`);
    const rootfs = join(work, 'rootfs');
    mkdirSync(rootfs);
    try {
      // By id: the tag may move meanwhile, and the disk is cached under this id.
      await exportRootfs(oci, imageId, rootfs, 'metal-disk-export');
    } catch (err) {
      throw new Error(`cannot build a disk image from ${opts.image}: ${messageOf(err)}`);
    }
    prepareRoot(rootfs, KERNEL_APPEND);
    const initrd = join(work, 'initrd.img');
    await buildInitrd(join(work, 'initrd'), kernel, initrd);

    // Room for the files plus a quarter and 64 MiB, at least 128 MiB: the
    // whole disk travels to the node, so it is kept small.
    const used = Number((await run('du', ['-sb', rootfs])).split(/\s/)[0]);
    const boot = statSync(kernel.vmlinuz).size + statSync(initrd).size;
    const fsBytes = Math.max(128 * MIB, Math.ceil(((used + boot) * 1.25 + 64 * MIB) / MIB) * MIB);
    const files = Number((await run('sh', ['-c', 'find "$1" -xdev | wc -l', 'sh', rootfs])).trim());
    const inodes = Math.max(Math.floor(fsBytes / 16384), files * 2 + 4096);
    const disk = join(work, 'disk.raw');
    writeFileSync(disk, '');
    await run('truncate', ['-s', String(PART_START + fsBytes), disk]);
    await run('sfdisk', ['--quiet', disk], {
      input: [
        'label: dos',
        'unit: sectors',
        '',
        `start=${PART_START / 512}, size=${fsBytes / 512}, type=83, bootable`,
        '',
      ].join('\n'),
    });
    // The filesystem is made in place, at the partition's offset in the file.
    await run('mkfs.ext4', [
      '-q',
      '-F',
      '-L',
      LABEL,
      '-N',
      String(inodes),
      '-E',
      `offset=${PART_START}`,
      '-d',
      rootfs,
      disk,
      `${fsBytes / 1024}k`,
    ]);

    // extlinux installs into a mounted filesystem and reads the partition's
    // start from its block device: the disk is attached with its partitions.
    mounts.loop = (await run('losetup', ['-f', '--show', '-P', disk])).trim();
    const part = `${mounts.loop}p1`;
    // Kernels without the MBR partition parser find no partitions themselves: add it by hand.
    if (!existsSync(part)) await run('partx', ['--add', '--nr', '1', mounts.loop]);
    await waitForDevice(part);
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    await run('mount', ['-t', 'ext4', '-o', 'nodev,nosuid,noexec', part, mnt]);
    mounts.mountpoint = mnt;
    // mkfs.ext4 -d turns zero blocks into holes, which syslinux cannot read:
    // the kernel and initrd are copied in whole.
    await run('cp', ['--sparse=never', kernel.vmlinuz, join(mnt, 'boot', 'vmlinuz')]);
    await run('cp', ['--sparse=never', initrd, join(mnt, 'boot', 'initrd.img')]);
    await run('extlinux', ['--install', join(mnt, 'boot', 'extlinux')]);
    await unmount(mounts);
    // The MBR's boot code: the first 440 bytes, before the disk signature and partition table.
    await run('dd', [`if=${MBR_BIN}`, `of=${disk}`, 'bs=440', 'count=1', 'conv=notrunc', 'status=none']);

    const sizeBytes = statSync(disk).size;
    const digest = `sha256:${await sha256File(disk)}`;
    const meta: Meta = { image: opts.image, imageId, sizeBytes, digest, builtAt: new Date().toISOString() };
    const out = join(work, 'out');
    mkdirSync(out);
    renameSync(disk, join(out, 'disk.raw'));
    writeFileSync(join(out, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
    try {
      renameSync(out, dir);
    } catch (err) {
      // Another process built the same disk meanwhile: theirs is as good.
      const theirs = readCached(dir);
      if (!theirs) throw err;
      return theirs;
    }
    opts.progress?.(`disk image for ${opts.image} built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { path: join(dir, 'disk.raw'), sizeBytes, digest };
  } finally {
    await unmount(mounts).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

/** busybox with its applets, the kernel's modules and metal-init as /init, as a gzipped cpio. */
async function buildInitrd(dir: string, kernel: KernelFiles, out: string): Promise<void> {
  for (const d of ['bin', 'sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'newroot', 'cidata'])
    mkdirSync(join(dir, d), { recursive: true });
  await run('cp', [BUSYBOX, join(dir, 'bin', 'busybox')]);
  for (const applet of (await run(BUSYBOX, ['--list'])).split('\n')) {
    if (/^[a-z0-9_[.-]+$/i.test(applet) && applet !== 'busybox') symlinkSync('busybox', join(dir, 'bin', applet));
  }
  await run('cp', ['-a', kernel.modulesLib, join(dir, 'lib')]);
  await run('install', ['-m', '0755', METAL_INIT, join(dir, 'init')]);
  const fd = openSync(out, 'w', 0o644);
  try {
    await pipeline(
      [
        { cmd: 'find', args: ['.'], cwd: dir },
        { cmd: 'cpio', args: ['-o', '-H', 'newc', '--quiet'], cwd: dir },
        { cmd: 'gzip', args: ['-1'] },
      ],
      fd,
    );
  } finally {
    closeSync(fd);
  }
}

interface Mounted {
  loop: string | undefined;
  mountpoint: string | undefined;
}

async function unmount(m: Mounted): Promise<void> {
  if (m.mountpoint) {
    await run('umount', [m.mountpoint]);
    m.mountpoint = undefined;
  }
  if (m.loop) {
    await run('losetup', ['-d', m.loop]);
    m.loop = undefined;
  }
}

/** The partition's device node appears shortly after the loop device is set up. */
async function waitForDevice(path: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!existsSync(path)) {
    if (Date.now() > end) throw new Error(`${path} did not appear`);
    await new Promise(r => setTimeout(r, 20));
  }
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', d => h.update(d))
      .once('error', reject)
      .once('end', () => resolve(h.digest('hex')));
  });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
