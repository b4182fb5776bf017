// The deploy ramdisk for real: a provisioning network on a test bridge of its
// own (dnsmasq, the boot server) and a plain QEMU machine on it that boots
// from the network (QEMU's iPXE) or from the per-boot ISO, and does each task:
// inspect, deploy (image and config drive, read back from its disk after
// QEMU exits), a deploy whose image is missing, and clean. No BMC here: the
// test starts and stops QEMU itself. Needs root and scripts/metal.sh.
import { strict as assert } from 'node:assert';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ProvisioningNetwork } from '../src/drivers/metal/provisioning/index.ts';
import type { BootSession, Hardware, TaskResult } from '../src/drivers/metal/types.ts';

const DEPLOY = join(process.env.STRATA_METAL_DIR ?? '/var/lib/strata-host/metal', 'deploy');
const BRIDGE = 'stmrdtest0';
const TAP = 'stmrdtap0';
const CIDR = '10.213.77.1/24';
const MAC = '52:54:00:d7:72:01';
const DISK_MIB = 256;
const IMAGE_MIB = 8;
const MiB = 1024 * 1024;

const dir = mkdtempSync(join(tmpdir(), 'strata-metal-ramdisk-'));
const disk = join(dir, 'disk.qcow2');
let pn: ProvisioningNetwork;
let qemu: { child: ChildProcess; exited: Promise<void>; serial: string } | null = null;

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
const ipQuiet = (...args: string[]) => {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    // already gone
  }
};

before(async () => {
  assert.equal(process.getuid?.(), 0, 'this test needs root (bridges, taps, dnsmasq)');
  for (const f of ['vmlinuz', 'initramfs.cpio.gz'])
    assert.ok(existsSync(join(DEPLOY, f)), `${join(DEPLOY, f)} is missing: run scripts/metal.sh`);
  ipQuiet('link', 'del', TAP);
  ipQuiet('link', 'del', BRIDGE);
  pn = await ProvisioningNetwork.open({
    dataDir: join(dir, 'net'),
    bridge: BRIDGE,
    cidr: CIDR,
    httpPort: 0,
    deployDir: DEPLOY,
  });
  sh('ip', 'tuntap', 'add', 'dev', TAP, 'mode', 'tap');
  sh('ip', 'link', 'set', TAP, 'master', BRIDGE);
  sh('ip', 'link', 'set', TAP, 'up');
  sh('qemu-img', 'create', '-q', '-f', 'qcow2', disk, `${DISK_MIB}M`);
});

after(async () => {
  await stopQemu();
  await pn?.close();
  ipQuiet('link', 'del', TAP);
  ipQuiet('link', 'del', BRIDGE);
  // STRATA_TEST_KEEP=1 keeps the serial logs and dnsmasq's log to read.
  if (process.env.STRATA_TEST_KEEP) process.stderr.write(`kept ${dir}\n`);
  else rmSync(dir, { recursive: true, force: true });
});

/** The machine: q35 under TCG, its disk, one NIC on the test bridge, booting the network or a CD. */
function startQemu(boot: { cdrom: string } | 'network', name: string): void {
  const serial = join(dir, `${name}.serial.log`);
  const args = [
    '-machine',
    'q35,graphics=off',
    '-accel',
    'tcg,tb-size=128',
    '-smp',
    '1',
    '-m',
    '1024',
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
    '-serial',
    `file:${serial}`,
    '-drive',
    `file=${disk},if=none,id=d0,format=qcow2`,
    '-device',
    'virtio-blk-pci,drive=d0',
    '-netdev',
    `tap,id=n0,ifname=${TAP},script=no,downscript=no`,
    '-device',
    `virtio-net-pci,netdev=n0,mac=${MAC}`,
    ...(boot === 'network' ? ['-boot', 'order=n'] : ['-cdrom', boot.cdrom, '-boot', 'order=d']),
  ];
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()));
  child.once('exit', code => {
    if (code) process.stderr.write(`qemu exited ${code}: ${stderr}\n`);
  });
  qemu = { child, exited, serial };
}

async function stopQemu(): Promise<void> {
  if (!qemu) return;
  const { child, exited } = qemu;
  qemu = null;
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  await exited;
}

const serialLog = () => (qemu && existsSync(qemu.serial) ? readFileSync(qemu.serial, 'utf8') : '');

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n--- serial ---\n${serialLog().slice(-3000)}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

/** Waits for a session's promise, with the serial console in the error when it does not come. */
async function within<T>(what: string, p: (signal: AbortSignal) => Promise<T>, ms = 180_000): Promise<T> {
  try {
    return await p(AbortSignal.timeout(ms));
  } catch (err) {
    throw new Error(
      `${what}: ${err instanceof Error ? err.message : String(err)}\n--- serial ---\n${serialLog().slice(-3000)}`,
    );
  }
}

/** Boots the machine for an armed session, waits for done, and powers it off (as a conductor would, by its BMC). */
async function runTask(
  session: BootSession,
  boot: { cdrom: string } | 'network',
  name: string,
): Promise<{ hw: Hardware; result: TaskResult; helloMs: number; taskMs: number }> {
  const t0 = Date.now();
  startQemu(boot, name);
  if (process.env.STRATA_TEST_KEEP) process.stderr.write(`${new Date(t0).toISOString()} qemu started (${name})\n`);
  const hw = await within(`${name}: hello`, s => session.hello(s));
  const t1 = Date.now();
  const result = await within(`${name}: done`, s => session.done(s));
  const t2 = Date.now();
  // It idles then, for its BMC to power it off.
  await until(`${name}: the ramdisk idling`, () => serialLog().includes('strata-ramdisk: idle'));
  await stopQemu();
  session.close();
  return { hw, result, helloMs: t1 - t0, taskMs: t2 - t1 };
}

function diskBytes(): Buffer {
  const raw = join(dir, 'readback.raw');
  sh('qemu-img', 'convert', '-q', '-f', 'qcow2', '-O', 'raw', disk, raw);
  const b = readFileSync(raw);
  rmSync(raw);
  return b;
}

interface PartitionTable {
  label: string;
  partitions: { node: string; start: number; size: number }[];
}
function partitions(bytes: Buffer): PartitionTable | null {
  const f = join(dir, 'pt.raw');
  writeFileSync(f, bytes);
  try {
    return (
      JSON.parse(execFileSync('sfdisk', ['--json', f], { encoding: 'utf8', stdio: 'pipe' })) as {
        partitiontable: PartitionTable;
      }
    ).partitiontable;
  } catch {
    return null;
  } finally {
    rmSync(f);
  }
}

let mac: string | null = null;
/** Where the deploy put the config drive, in bytes. */
let configDriveAt = 0;

test('inspect: an unknown node network-boots the ramdisk, which reports its CPUs, memory, disk and NIC', async t => {
  const session = await pn.armNetworkBoot('node-a', [], { action: 'inspect' });
  const { hw, result, helloMs } = await runTask(session, 'network', 'inspect');
  assert.deepEqual(result, { ok: true, message: 'inspected' });
  t.diagnostic(`QEMU start (PXE) to hello: ${helloMs} ms`);
  assert.equal(hw.cpus, 1);
  assert.equal(hw.memoryMib, 1024);
  assert.deepEqual(hw.disks, [{ name: 'vda', sizeBytes: DISK_MIB * MiB }]);
  assert.deepEqual(hw.nics, [{ name: 'eth0', mac: MAC }]);
  // The console shows the steps (what an operator reads through the BMC).
  const log = readFileSync(join(dir, 'inspect.serial.log'), 'utf8');
  for (const step of ['start', 'address 10.213.77.', 'hello {', 'task inspect', 'done: ok=true', 'idle'])
    assert.ok(log.includes(`strata-ramdisk: ${step}`), step);
  mac = hw.nics[0]!.mac;
  // dnsmasq (running as its own user) keeps its leases in the data directory.
  assert.match(readFileSync(join(dir, 'net', 'dnsmasq.leases'), 'utf8'), new RegExp(` ${MAC} 10\\.213\\.77\\.`));
});

const pattern = (size: number): Buffer => {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + (i >>> 13)) & 255;
  return b;
};

/** A NoCloud config drive, as the conductor would make it. */
function configDrive(): string {
  const iso = join(dir, 'config.iso');
  if (existsSync(iso)) return iso;
  const cd = join(dir, 'cd');
  mkdirSync(cd);
  writeFileSync(join(cd, 'meta-data'), 'instance-id: node-a\n');
  writeFileSync(join(cd, 'user-data'), '#cloud-config\n');
  sh('genisoimage', '-quiet', '-o', iso, '-V', 'cidata', '-J', '-R', cd);
  return iso;
}

for (const label of ['dos', 'gpt'] as const) {
  test(`deploy: an image with ${label === 'dos' ? 'an MBR' : 'a GPT'} lands on the disk, the config drive in a partition at its end`, async t => {
    assert.ok(mac, 'inspection found the MAC');
    // A whole-disk image: a partition table with one partition, a known pattern everywhere else.
    const image = join(dir, `image-${label}.raw`);
    writeFileSync(image, pattern(IMAGE_MIB * MiB));
    execFileSync('sfdisk', ['-q', image], { input: `label: ${label}\nstart=2048, type=L\n` });
    const imageBytes = readFileSync(image);
    const imageTable = partitions(imageBytes)!;
    const iso = configDrive();
    const isoBytes = readFileSync(iso);

    const imageUrl = pn.serveFile(image);
    const configDriveUrl = pn.serveFile(iso);
    const session = await pn.armNetworkBoot('node-a', [mac], { action: 'deploy', imageUrl, configDriveUrl });
    const { result, helloMs, taskMs } = await runTask(session, 'network', `deploy-${label}`);
    pn.unserveFile(imageUrl);
    pn.unserveFile(configDriveUrl);
    assert.equal(result.ok, true, result.message);
    assert.match(result.message, /^image written to vda, config drive at sector \d+$/);
    t.diagnostic(`QEMU start (PXE) to hello: ${helloMs} ms; deploy of ${IMAGE_MIB} MiB + config drive: ${taskMs} ms`);

    const bytes = diskBytes();
    // Everything but the partition tables as written (the GPT's backup at the image's end is stale data now).
    const [from, to] = label === 'dos' ? [512, IMAGE_MIB * MiB] : [34 * 512, IMAGE_MIB * MiB - 33 * 512];
    assert.ok(bytes.subarray(0, 446).equals(imageBytes.subarray(0, 446)), 'boot code');
    assert.ok(bytes.subarray(from, to).equals(imageBytes.subarray(from, to)), 'the image');
    const table = partitions(bytes);
    assert.ok(table, 'a partition table sfdisk reads');
    assert.equal(table.label, label);
    assert.equal(table.partitions.length, 2);
    assert.deepEqual(
      [table.partitions[0]!.start, table.partitions[0]!.size],
      [imageTable.partitions[0]!.start, imageTable.partitions[0]!.size],
    );
    const cdPart = table.partitions[1]!;
    const total = DISK_MIB * 2048;
    assert.ok(cdPart.start + cdPart.size <= total - 33 && cdPart.start >= total - 3 * 2048, JSON.stringify(cdPart));
    assert.ok(cdPart.size * 512 >= isoBytes.length);
    const at = cdPart.start * 512;
    configDriveAt = at;
    assert.ok(bytes.subarray(at, at + isoBytes.length).equals(isoBytes), 'the config drive is in its partition');
    // The label the booted image's cloud-init looks for: the primary volume descriptor's volume id.
    assert.equal(
      bytes
        .subarray(at + 32808, at + 32808 + 32)
        .toString('latin1')
        .trim(),
      'cidata',
    );
    if (label === 'gpt') {
      const f = join(dir, 'verify.raw');
      writeFileSync(f, bytes);
      // Both GPT copies agree, the backup at the disk's end.
      assert.match(execFileSync('sfdisk', ['--verify', f], { encoding: 'utf8', stdio: 'pipe' }), /No errors detected/);
      rmSync(f);
    }
  });
}

test('deploy of an image that is not there fails with the reason', async () => {
  assert.ok(mac);
  const missing = pn.serveFile(join(dir, 'image-dos.raw'));
  pn.unserveFile(missing);
  const session = await pn.armNetworkBoot('node-a', [mac], {
    action: 'deploy',
    imageUrl: missing,
    configDriveUrl: null,
  });
  const { result } = await runTask(session, 'network', 'deploy-404');
  assert.equal(result.ok, false);
  assert.match(result.message, /^image download failed: .*404/);
});

test('clean: partition tables and signatures are gone, the first and last MiB are zero', async () => {
  assert.ok(mac);
  const session = await pn.armNetworkBoot('node-a', [mac], { action: 'clean' });
  const { result } = await runTask(session, 'network', 'clean');
  assert.deepEqual(result, { ok: true, message: 'wiped vda' });
  const bytes = diskBytes();
  const zero = Buffer.alloc(MiB);
  assert.ok(bytes.subarray(0, MiB).equals(zero), 'first MiB');
  assert.ok(bytes.subarray(bytes.length - MiB).equals(zero), 'last MiB');
  assert.equal(partitions(bytes), null);
  // What was the config drive's partition holds no filesystem blkid would find (wipefs cleared its magic).
  assert.ok(configDriveAt > 0);
  const region = join(dir, 'region.raw');
  writeFileSync(region, bytes.subarray(configDriveAt));
  assert.throws(() => execFileSync('blkid', ['-p', region], { stdio: 'pipe' }), { status: 2 });
  rmSync(region);
});

test('dnsmasq is started again when it dies', async () => {
  const pidFile = join(dir, 'net', 'dnsmasq.pid');
  const pid = Number(readFileSync(pidFile, 'utf8'));
  assert.ok(readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('dnsmasq\0'));
  process.kill(pid, 'SIGKILL');
  await until('a new dnsmasq', () => {
    const now = Number(readFileSync(pidFile, 'utf8'));
    return now !== pid && existsSync(`/proc/${now}/cmdline`);
  });
  // The boot below gets its address from the new one.
});

test('media boot: the machine boots the per-boot ISO and its ramdisk reaches the boot server', async t => {
  const { session, isoUrl } = await pn.armMediaBoot('node-a', { action: 'inspect' });
  // As a BMC's virtual media would: fetch the ISO by its URL.
  const iso = join(dir, 'media.iso');
  await new Promise<void>((resolve, reject) => {
    request(isoUrl, res => {
      assert.equal(res.statusCode, 200);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        writeFileSync(iso, Buffer.concat(chunks));
        resolve();
      });
    })
      .on('error', reject)
      .end();
  });
  const { result, helloMs } = await runTask(session, { cdrom: iso }, 'media');
  assert.deepEqual(result, { ok: true, message: 'inspected' });
  t.diagnostic(`QEMU start (CD) to hello: ${helloMs} ms`);
  // Closed: the ISO is no longer served.
  const status = await new Promise<number>((resolve, reject) =>
    request(isoUrl, res => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('error', reject)
      .end(),
  );
  assert.equal(status, 404);
});

test('a dnsmasq left by a conductor killed with -9 is killed when the network opens again', async () => {
  const opts = { dataDir: join(dir, 'net'), bridge: BRIDGE, cidr: CIDR, httpPort: 0, deployDir: DEPLOY };
  await pn.close();
  const index = new URL('../src/drivers/metal/provisioning/index.ts', import.meta.url).pathname;
  const script = `import { ProvisioningNetwork } from ${JSON.stringify(index)};
await ProvisioningNetwork.open(${JSON.stringify(opts)});
console.log('open');`;
  const conductor = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise(r => conductor.once('exit', r));
  try {
    await new Promise<void>((resolve, reject) => {
      conductor.stdout!.on('data', (c: Buffer) => c.toString().includes('open') && resolve());
      conductor.once('exit', code => reject(new Error(`the conductor exited (${code})`)));
    });
  } finally {
    conductor.kill('SIGKILL');
    await exited;
  }
  const pidFile = join(opts.dataDir, 'dnsmasq.pid');
  const stale = Number(readFileSync(pidFile, 'utf8'));
  const running = (pid: number) =>
    existsSync(`/proc/${pid}`) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  assert.ok(running(stale), 'the killed conductor left its dnsmasq behind');
  try {
    pn = await ProvisioningNetwork.open(opts);
  } finally {
    if (running(stale)) process.kill(stale, 'SIGKILL');
  }
  assert.equal(running(stale), false, 'opening again killed it');
  const fresh = Number(readFileSync(pidFile, 'utf8'));
  assert.notEqual(fresh, stale);
  assert.ok(running(fresh));
});
