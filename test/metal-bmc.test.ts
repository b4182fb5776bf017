// The BMC clients against the emulated-server rig: one node behind OpenIPMI's
// simulator, one behind the Redfish emulator, each a real QEMU machine (TCG
// here). No network boot: the firmware's output on the console is enough.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openBmc, parseBmcUrl } from '../src/drivers/metal/bmc/index.ts';
import { BmcError, type Bmc, type BmcAddress } from '../src/drivers/metal/types.ts';
import { startRig, type Rig, type RigNode } from '../src/rig/metal/rig.ts';
import { freePort, removeDir, tempDir, until } from './helpers.ts';

let dir: string;
let rig: Rig;
let media: Server;
let isoUrl: string;
let isoSize: number;

before(async () => {
  dir = tempDir('strata-metal-bmc-');
  const isoRoot = join(dir, 'iso');
  mkdirSync(isoRoot);
  writeFileSync(join(isoRoot, 'hello.txt'), 'hello from the virtual CD\n');
  const iso = join(dir, 'small.iso');
  execFileSync('genisoimage', ['-quiet', '-V', 'RIGTEST', '-o', iso, isoRoot]);
  isoSize = statSync(iso).size;
  media = createServer((req, res) => {
    if (req.url !== '/small.iso') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(readFileSync(iso));
  });
  await new Promise<void>(r => media.listen(0, '127.0.0.1', r));
  isoUrl = `http://127.0.0.1:${(media.address() as AddressInfo).port}/small.iso`;
  rig = await startRig({
    dir: join(dir, 'rig'),
    bridge: `mbt${process.pid}`.slice(0, 15),
    nodes: [
      { name: 'ipmi-node', bmc: 'ipmi', username: 'admin', password: 'ipmi-secret', memoryMib: 512, diskGib: 1 },
      { name: 'redfish-node', bmc: 'redfish', username: 'root', password: 'rf-secret', memoryMib: 512, diskGib: 1 },
    ],
  });
});

after(async () => {
  await rig?.stop();
  await new Promise(r => (media ? media.close(r) : r(undefined)));
  removeDir(dir);
});

const node = (bmc: 'ipmi' | 'redfish'): RigNode => rig.nodes.find(n => n.bmcUrl.startsWith(bmc))!;
const bmcOf = (n: RigNode, change: Partial<BmcAddress> = {}): Bmc => openBmc({ ...parseBmcUrl(n.bmcUrl), ...change });

/** The command line of the node's QEMU, from its pidfile; undefined when it does not run. */
function qemuCmdline(n: RigNode): string[] | undefined {
  try {
    const pid = Number(readFileSync(join(n.dir, 'qemu.pid'), 'utf8'));
    if (/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) return undefined;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}

const bootOrder = (n: RigNode) => qemuCmdline(n)?.find(a => a.startsWith('order='));

async function rejectsWith(p: Promise<unknown>, reason: BmcError['reason'], password?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BmcError, String(e));
    assert.equal(e.reason, reason, e.message);
    if (password) assert.ok(!e.message.includes(password), e.message);
    return true;
  });
}

async function timed<T>(p: Promise<T>): Promise<number> {
  const t = Date.now();
  await p.catch(() => {});
  return Date.now() - t;
}

test('verify() passes with the right credentials, on both kinds of BMC', async () => {
  for (const n of rig.nodes) await bmcOf(n).verify();
  assert.equal(bmcOf(node('ipmi')).protocol, 'ipmi');
  assert.equal(bmcOf(node('redfish')).protocol, 'redfish');
});

test('a wrong password is refused as auth, at once and without echoing it', async () => {
  for (const n of rig.nodes) {
    const bmc = bmcOf(n, { password: 'wrong-pass-1' });
    const ms = await timed(rejectsWith(bmc.verify(), 'auth', 'wrong-pass-1'));
    assert.ok(ms < 3000, `${n.name}: ${ms} ms`);
  }
  await rejectsWith(bmcOf(node('ipmi'), { username: 'nobody' }).verify(), 'auth');
});

test('a BMC address where nothing answers is unreachable, within the call bound', async () => {
  const udp = createSocket('udp4');
  await new Promise<void>(r => udp.bind(0, '127.0.0.1', r));
  const silentPort = udp.address().port; // bound but never answering: IPMI gets no reply
  try {
    const ipmi = bmcOf(node('ipmi'), { port: silentPort });
    // Two runs of ~10 s each (ipmitool's -N 5 -R 1), not the 20 s hard bound of each.
    const ms = await timed(rejectsWith(ipmi.verify(), 'unreachable'));
    assert.ok(ms < 30_000, `ipmi: ${ms} ms`);
  } finally {
    udp.close();
  }
  await rejectsWith(bmcOf(node('redfish'), { port: await freePort() }).verify(), 'unreachable');
});

test('power and boot device really change the machine, and repeating them changes nothing', async () => {
  for (const n of rig.nodes) {
    const bmc = bmcOf(n);
    await bmc.setPower('off');
    await bmc.setBootDevice('disk', true);
    await bmc.setPower('on');
    const first = qemuCmdline(n);
    assert.ok(first, `${n.name}: no QEMU after power on`);
    assert.equal(await bmc.power(), 'on');
    assert.equal(bootOrder(n), 'order=c');
    assert.ok(first.includes(`virtio-net-pci,netdev=net0,mac=${n.mac}`));
    const pid = readFileSync(join(n.dir, 'qemu.pid'), 'utf8');
    await bmc.setPower('on');
    assert.equal(readFileSync(join(n.dir, 'qemu.pid'), 'utf8'), pid, `${n.name}: a second power on restarted QEMU`);

    await bmc.setBootDevice('pxe', true);
    await bmc.setPower('off');
    assert.equal(qemuCmdline(n), undefined, `${n.name}: QEMU still runs after power off`);
    assert.equal(await bmc.power(), 'off');
    await bmc.setPower('off');
    await bmc.setPower('on');
    assert.equal(bootOrder(n), 'order=n');
    await bmc.setPower('off');
    // The disk stays across power cycles.
    assert.ok(statSync(join(n.dir, 'disk.qcow2')).size > 0);
  }
  // Redfish tells a one-time override from a persistent one: Once is spent by one boot.
  const n = node('redfish');
  const bmc = bmcOf(n);
  await bmc.setBootDevice('disk', false);
  await bmc.setPower('on');
  assert.equal(bootOrder(n), 'order=c');
  await bmc.setPower('off');
  await bmc.setPower('on');
  assert.equal(bootOrder(n), 'order=cn', 'the default order after a Once override was spent');
  await bmc.setPower('off');
  await rejectsWith(bmcOf(node('ipmi')).setBootDevice('cd', false), 'unsupported');
});

test('the console opens on a machine that is off, shows its boot from the start, and takes keys', async () => {
  for (const n of rig.nodes) {
    const bmc = bmcOf(n);
    await bmc.setBootDevice('pxe', true);
    assert.equal(await bmc.power(), 'off');
    const console = await bmc.openConsole();
    await bmc.setPower('on');
    let seen = '';
    let typed = false;
    const timer = setTimeout(() => console.close(), 60_000);
    try {
      for await (const chunk of console.output) {
        seen = (seen + chunk.toString('latin1')).slice(-20_000);
        // iPXE waits 2 s for Ctrl-B, then names the NIC by its MAC; with Ctrl-B it opens its shell.
        if (!typed && seen.includes('Press Ctrl-B for the iPXE command line')) {
          console.write(Buffer.from([2]));
          typed = true;
        }
        if (seen.includes('iPXE>')) break;
      }
    } finally {
      clearTimeout(timer);
      console.close();
      await bmc.setPower('off');
    }
    assert.match(seen, /SeaBIOS \(version/, `${n.name} console: ${JSON.stringify(seen.slice(0, 300))}`);
    assert.ok(seen.includes('iPXE>'), `${n.name} console: ${JSON.stringify(seen.slice(-500))}`);
  }
});

test('virtual media: Redfish fetches an ISO from a URL, boots it once, ejects it; IPMI has none', async () => {
  const n = node('redfish');
  const bmc = bmcOf(n);
  assert.equal(bmc.supportsVirtualMedia, true);
  await bmc.setPower('off');
  await bmc.insertMedia(isoUrl);
  await bmc.insertMedia(isoUrl);
  const cd = await redfishGet(n, '/redfish/v1/Managers/BMC/VirtualMedia/CD');
  assert.equal(cd.body.Inserted, true);
  assert.equal(cd.body.Image, isoUrl);
  assert.equal(statSync(join(n.dir, 'media.iso')).size, isoSize);

  await bmc.setBootDevice('cd', false);
  const logBefore = readFileSync(n.serialLog).length;
  await bmc.setPower('on');
  assert.ok(qemuCmdline(n)?.includes('-cdrom'));
  assert.equal(bootOrder(n), 'order=d');
  await until('SeaBIOS to boot the CD', async () =>
    readFileSync(n.serialLog).subarray(logBefore).toString('latin1').includes('Booting from DVD/CD') ? true : undefined,
  );
  await bmc.setPower('off');
  await bmc.ejectMedia();
  await bmc.ejectMedia();
  assert.equal((await redfishGet(n, '/redfish/v1/Managers/BMC/VirtualMedia/CD')).body.Inserted, false);

  const ipmi = bmcOf(node('ipmi'));
  assert.equal(ipmi.supportsVirtualMedia, false);
  await rejectsWith(ipmi.insertMedia(isoUrl), 'unsupported');
  await rejectsWith(ipmi.ejectMedia(), 'unsupported');
});

test('the Redfish emulator answers what it cannot do with Redfish error bodies', async () => {
  const n = node('redfish');
  const open = await redfishGet(n, '/redfish/v1/', false);
  assert.equal(open.status, 200, 'the service root needs no credentials');
  assert.equal(open.body.Systems?.['@odata.id'], '/redfish/v1/Systems');
  const cases: [string, string, string | undefined, boolean, number][] = [
    ['GET', '/redfish/v1/Systems/1', undefined, false, 401],
    ['GET', '/redfish/v1/Nothing', undefined, true, 404],
    ['DELETE', '/redfish/v1/Systems/1', undefined, true, 405],
    ['PATCH', '/redfish/v1/Systems/1', '{not json', true, 400],
    ['PATCH', '/redfish/v1/Systems/1', '{"Boot":{"BootSourceOverrideTarget":"Floppy"}}', true, 400],
    ['POST', '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', '{"ResetType":"Explode"}', true, 400],
    [
      'POST',
      '/redfish/v1/Managers/BMC/VirtualMedia/CD/Actions/VirtualMedia.InsertMedia',
      '{"Image":"ftp://x"}',
      true,
      400,
    ],
  ];
  for (const [method, path, body, auth, status] of cases) {
    const res = await redfishCall(n, method, path, body, auth);
    assert.equal(res.status, status, `${method} ${path}`);
    assert.equal(typeof res.body.error?.['@Message.ExtendedInfo']?.[0]?.MessageId, 'string', `${method} ${path}`);
  }
});

type Resource = any;

async function redfishCall(n: RigNode, method: string, path: string, body?: string, auth = true) {
  const a = parseBmcUrl(n.bmcUrl);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (auth) headers.authorization = `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`;
  const res = await fetch(`http://${a.host}:${a.port}${path}`, { method, headers, body: body ?? null });
  return { status: res.status, body: (await res.json()) as Resource };
}

const redfishGet = (n: RigNode, path: string, auth = true) => redfishCall(n, 'GET', path, undefined, auth);
