// The same OCI image a container runs, as a bare-metal node's whole disk: built
// from the local registry's busybox, booted by QEMU from the disk alone
// (SeaBIOS, the MBR, extlinux, Strata's kernel and initrd; no -kernel), with
// a config drive as a second disk, as a node would after a deploy.
import { strict as assert } from 'node:assert';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildConfigDrive, buildWholeDiskImage, type WholeDisk } from '../src/drivers/metal/images/index.ts';
import { PODMAN_SOCKET, removeDir, TEST_IMAGE, tempDir, until } from './helpers.ts';

const KERNEL_DIR = join(process.env.STRATA_VM_DIR ?? '/var/lib/strata-host/vm', 'kernel');
const root = process.getuid?.() === 0;
const skip = root ? false : 'builds a disk with loop devices and mounts: needs root';

const dir = tempDir('strata-metal-image-');
const cacheDir = join(dir, 'cache');
const qemus: ChildProcess[] = [];

after(async () => {
  for (const q of qemus) {
    if (q.exitCode === null && q.signalCode === null) {
      const gone = new Promise(r => q.once('exit', r));
      q.kill('SIGKILL');
      await gone;
    }
  }
  removeDir(dir);
});

const build = (progress?: (m: string) => void) =>
  buildWholeDiskImage({
    image: TEST_IMAGE,
    dockerSocket: PODMAN_SOCKET,
    cacheDir,
    kernelDir: KERNEL_DIR,
    ...(progress ? { progress } : {}),
  });

const sha256 = (path: string): string => `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
const halfMade = () => readdirSync(cacheDir).filter(n => n.startsWith('.'));

/** QEMU booting a node from its disk alone (no -kernel), with the config drive as a second disk if given. */
function boot(diskPath: string, iso: string | undefined, log: string, extra: string[] = []) {
  const qemu = spawn(
    'qemu-system-x86_64',
    [
      ...['-machine', 'q35,graphics=off', '-accel', 'tcg,tb-size=128', '-m', '512'],
      // snapshot=on: the node writes to its disk; the cached image stays as built.
      ...['-drive', `file=${diskPath},format=raw,if=virtio,snapshot=on`],
      ...(iso ? ['-drive', `file=${iso},format=raw,if=virtio,readonly=on`] : []),
      ...extra,
      ...['-boot', 'c', '-serial', `file:${log}`, '-display', 'none', '-no-reboot'],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  qemus.push(qemu);
  let stderr = '';
  qemu.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const text = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
  const waitFor = (re: RegExp) =>
    until(
      `${re} on the serial console`,
      async () => {
        const m = re.exec(text());
        if (m) return m[1] ?? m[0];
        if (qemu.exitCode !== null) throw new Error(`QEMU exited (${qemu.exitCode}) first: ${stderr}\n${text()}`);
        return undefined;
      },
      180_000,
    );
  return { qemu, text, waitFor };
}

let disk: WholeDisk;

test('two concurrent builds of one image build it once, as a bootable MBR disk', { skip }, async t => {
  const said: string[] = [];
  const started = Date.now();
  const [a, b] = await Promise.all([build(m => said.push(m)), build(m => said.push(m))]);
  t.diagnostic(`cold build: ${Date.now() - started} ms, ${a.sizeBytes} bytes`);
  assert.deepEqual(a, b);
  assert.equal(said.filter(m => m.startsWith('turning')).length, 1, said.join('\n'));
  disk = a;
  assert.equal(sha256(disk.path), disk.digest);
  // mbr.bin's boot code, then one bootable Linux partition from 1 MiB.
  const head = readFileSync(disk.path).subarray(0, 512);
  assert.ok(head.subarray(0, 440).equals(readFileSync('/usr/lib/syslinux/mbr/mbr.bin').subarray(0, 440)));
  const table = JSON.parse(execFileSync('sfdisk', ['--json', disk.path], { encoding: 'utf8' })) as {
    partitiontable: { label: string; partitions: { start: number; size: number; type: string; bootable?: boolean }[] };
  };
  assert.equal(table.partitiontable.label, 'dos');
  // It ends where the disk does: the deploy adds the config drive after it.
  assert.deepEqual(
    table.partitiontable.partitions.map(p => [p.start, p.size, p.type, p.bootable ?? false]),
    [[2048, a.sizeBytes / 512 - 2048, '83', true]],
  );
  assert.deepEqual(halfMade(), []);
});

test('the node boots from its disk and runs the command from its config drive', { skip }, async t => {
  assert.ok(disk, 'the disk of the first test');
  const hostile = `it's "quoted" $(touch /pwned) \`id\``;
  const iso = await buildConfigDrive(join(dir, 'node-1'), {
    instanceId: 'ins_metal_1',
    hostname: 'node-e2e',
    sshKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIStrata test@strata'],
    command: [
      'sh',
      '-c',
      'echo "marker-$1"; echo "hostname=$(hostname)"; echo "env=$GREETING"; ip -o -4 addr show; ' +
        'cat /root/.ssh/authorized_keys; [ -e /pwned ] && echo pwned; exit 0',
      'sh',
      'metal-ok',
    ],
    env: { GREETING: hostile },
    workingDir: '/tmp',
  });
  const log = join(dir, 'node-1', 'serial.log');
  const started = Date.now();
  // A NIC the cloud kernel drives, with QEMU's DHCP server behind it.
  const node = boot(disk.path, iso, log, ['-nic', 'user,model=virtio-net-pci']);
  const exit = await node.waitFor(/strata-exit: (\d+)/);
  t.diagnostic(`QEMU start to strata-exit: ${Date.now() - started} ms`);
  const out = node.text();
  assert.equal(exit, '0', out);
  assert.ok(!/-kernel/.test(node.qemu.spawnargs.join(' ')));
  assert.match(out, /SYSLINUX/, 'booted by extlinux from the disk');
  assert.match(out, /^marker-metal-ok\r?$/m);
  assert.match(out, /^hostname=node-e2e\r?$/m);
  assert.ok(out.includes(`env=${hostile}`), out);
  assert.match(out, /eth0\s+inet 10\.0\.2\.15\/24/, 'DHCP on the NIC');
  assert.match(out, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIStrata test@strata\r?$/m);
  assert.ok(!/^pwned/m.test(out));
  await until('QEMU to power off', async () => (node.qemu.exitCode !== null ? true : undefined), 60_000);
  assert.equal(sha256(disk.path), disk.digest, 'the cached disk is unchanged');
});

test("with the config drive in a partition at its disk's end and no command, the node hands over to the image's own init", {
  skip,
}, async () => {
  const iso = await buildConfigDrive(join(dir, 'node-2'), {
    instanceId: 'ins_metal_2',
    hostname: 'node-init',
    sshKeys: [],
    command: [],
    env: {},
  });
  // The node's disk as a deploy leaves it (guest/ramdisk-init): the image on
  // a larger disk, and the config drive in a partition appended at its end.
  const nodeDisk = join(dir, 'node-2', 'disk.raw');
  execFileSync('cp', ['--sparse=always', disk.path, nodeDisk]);
  const diskSectors = (disk.sizeBytes + 128 * 1024 * 1024) / 512;
  truncateSync(nodeDisk, diskSectors * 512);
  const driveSectors = Math.ceil(readFileSync(iso).length / 512 / 2048) * 2048;
  const start = Math.floor((diskSectors - 34 - driveSectors) / 2048) * 2048;
  execFileSync('sfdisk', ['-q', '--append', nodeDisk], { input: `start=${start}, size=${driveSectors}, type=L\n` });
  execFileSync('dd', [`if=${iso}`, `of=${nodeDisk}`, 'bs=512', `seek=${start}`, 'conv=notrunc'], { stdio: 'ignore' });
  const node = boot(nodeDisk, undefined, join(dir, 'node-2', 'serial.log'));
  // busybox's init, with no inittab, asks for Enter on the console.
  await node.waitFor(/Please press Enter to activate this console/);
  assert.match(node.text(), /strata-metal: ready; starting the image's init \/bin\/init/);
  assert.ok(!/no config drive/.test(node.text()), "the drive was found at the disk's end");
  assert.ok(!/strata-exit/.test(node.text()));
  const gone = new Promise(r => node.qemu.once('exit', r));
  node.qemu.kill('SIGKILL');
  await gone;
});

test('a second build of the same image is the cached disk', { skip }, async t => {
  assert.ok(disk, 'the disk of the first test');
  const said: string[] = [];
  const started = Date.now();
  const again = await build(m => said.push(m));
  t.diagnostic(`warm build: ${Date.now() - started} ms`);
  assert.deepEqual(again, disk);
  assert.ok(!said.some(m => m.startsWith('turning')), said.join('\n'));
});

test('what a crashed build left mounted and attached is released, and nothing of it stays', { skip }, async () => {
  // A build's work directory as a killed process leaves it, mid-build: its disk on a loop device, mounted.
  const deadPid = spawnSync('true').pid;
  const work = join(cacheDir, `.build-${deadPid}-crashed`);
  mkdirSync(join(work, 'mnt'), { recursive: true });
  execFileSync('truncate', ['-s', '16M', join(work, 'disk.raw')]);
  execFileSync('mkfs.ext4', ['-q', join(work, 'disk.raw')]);
  const loop = execFileSync('losetup', ['-f', '--show', join(work, 'disk.raw')], { encoding: 'utf8' }).trim();
  try {
    execFileSync('mount', [loop, join(work, 'mnt')]);
    await build();
    assert.ok(!existsSync(work), 'the work directory is gone');
    assert.equal(execFileSync('losetup', ['-j', join(work, 'disk.raw')], { encoding: 'utf8' }), '');
  } finally {
    spawnSync('umount', [join(work, 'mnt')]);
    spawnSync('losetup', ['-d', loop]);
  }
});

test('an image that does not exist, or a reference that is not one, gives a clear error', { skip }, async () => {
  for (const image of ['127.0.0.1:5000/library/no-such-image:1', 'not a reference!']) {
    await assert.rejects(
      buildWholeDiskImage({ image, dockerSocket: PODMAN_SOCKET, cacheDir, kernelDir: KERNEL_DIR }),
      (err: Error) => err.message.startsWith(`cannot build a disk image from ${image}: `),
    );
  }
  assert.deepEqual(halfMade(), []);
});
