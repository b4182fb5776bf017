// Bare metal for real: emulated servers (QEMU machines with their own disks
// and NICs on a provisioning bridge) behind real BMCs (OpenIPMI's ipmi_sim,
// and the project's Redfish service), enrolled, inspected, cleaned, deployed
// with the busybox OCI image and undeployed through the API by a real agent
// that conducts them. Needs root, QEMU, ipmitool and dnsmasq (scripts/metal.sh).
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildWholeDiskImage } from '../src/drivers/metal/images/index.ts';
import { type Rig, startRig } from '../src/rig/metal/rig.ts';
import {
  freePort,
  PODMAN_SOCKET,
  removeDir,
  startContainerFixture,
  TEST_IMAGE,
  tempDir,
  until,
  type ContainerFixture,
} from './helpers.ts';

const KERNEL_DIR = join(process.env.STRATA_VM_DIR ?? '/var/lib/strata-host/vm', 'kernel');

interface NodeOut {
  id: string;
  name: string;
  provisionState: string;
  lastError: string;
  capacity: { vcpus: number; memoryMib: number; diskGib: number };
  hardware: { cpus: number; memoryMib: number; disks: { sizeBytes: number }[]; nics: { mac: string }[] } | null;
  instance: string | null;
}

const BRIDGE = 'stmetal0';
let rig: Rig;
let fx: ContainerFixture;

before(async () => {
  rig = await startRig({
    dir: tempDir('strata-metal-rig-'),
    bridge: BRIDGE,
    nodes: [
      { name: 'rack-ipmi', bmc: 'ipmi', username: 'admin', password: 'ipmi-pass' },
      { name: 'rack-redfish', bmc: 'redfish', username: 'admin', password: 'redfish-pass' },
    ],
  });
  const port = await freePort();
  fx = await startContainerFixture('metal-conductor', {
    drivers: ['container', 'metal'],
    agentArgs: ['--metal-bridge', BRIDGE, '--metal-cidr', '172.30.251.1/24', '--metal-port', String(port)],
    nodeStepTimeouts: { verifying: 30, inspecting: 300, cleaning: 300, deploying: 900, undeploying: 60 },
  });
});

after(async () => {
  await fx?.close();
  await rig?.stop();
});

const rigNode = (name: string) => rig.nodes.find(n => n.name === name)!;

async function node(ref: string): Promise<NodeOut> {
  const res = await fx.admin.get(`/v1/nodes/${ref}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body as NodeOut;
}

/** Waits for the node to settle in `state`; a different settled state fails at once, with its error. */
async function settles(ref: string, state: string, timeoutMs = 300_000): Promise<NodeOut> {
  return until(
    `node ${ref} ${state}`,
    async () => {
      const n = await node(ref);
      if (n.provisionState === state) return n;
      if (/failed$/.test(n.provisionState))
        throw new Error(`node ${ref} is ${n.provisionState} (wanted ${state}): ${n.lastError}`);
      return undefined;
    },
    timeoutMs,
  );
}

/** The instance's log once its command ended well; a failed deploy fails at once, with its reason. */
async function ranToEnd(id: string, what: string): Promise<string> {
  return until(
    what,
    async () => {
      const text = await logsOf(id);
      if (/strata-exit: 0/.test(text)) return text;
      const i = (await fx.admin.get(`/v1/instances/${id}`)).body as { state: string; message?: string | null };
      if (i.state === 'failed') throw new Error(`${what}: the instance failed: ${i.message ?? ''}`);
      return undefined;
    },
    900_000,
  );
}

async function act(ref: string, action: string): Promise<void> {
  const res = await fx.admin.post(`/v1/nodes/${ref}/provision`, { action });
  assert.equal(res.status, 202, JSON.stringify(res.body));
}

async function logsOf(id: string): Promise<string> {
  const res = await fx.admin.get(`/v1/instances/${id}/logs`);
  if (res.status !== 200 || res.body === null) return '';
  // One line of NDJSON parses as JSON on its own.
  if (typeof res.body !== 'string') return (res.body as { data?: string }).data ?? '';
  return res.body
    .split('\n')
    .filter(Boolean)
    .map(l => (JSON.parse(l) as { data: string }).data)
    .join('');
}

test('wrong credentials and an unreachable BMC fail verification by name; nothing else is touched', async () => {
  const ipmi = new URL(rigNode('rack-ipmi').bmcUrl);
  const bad = await fx.admin.post('/v1/nodes', { name: 'bad-pass', bmc: `ipmi://admin:wrong@${ipmi.host}` });
  assert.equal(bad.status, 201, JSON.stringify(bad.body));
  const ghost = await fx.admin.post('/v1/nodes', {
    name: 'ghost',
    bmc: `ipmi://admin:x@127.0.0.1:${await freePort()}`,
  });
  assert.equal(ghost.status, 201, JSON.stringify(ghost.body));
  // The same BMC twice, and a URL that is no BMC's: refused, nothing made.
  const twice = await fx.admin.post('/v1/nodes', { name: 'twice', bmc: `ipmi://admin:wrong@${ipmi.host}` });
  assert.equal(twice.status, 409);
  const junk = await fx.admin.post('/v1/nodes', { name: 'junk', bmc: 'ipmi://admin:pw@-rf;reboot' });
  assert.equal(junk.status, 400);
  assert.equal(typeof junk.body.error.message, 'string');
  for (const n of ['bad-pass', 'ghost']) await act(n, 'manage');
  const failedBad = await until('bad-pass verify failed', async () => {
    const n = await node('bad-pass');
    return n.provisionState === 'verify failed' ? n : undefined;
  });
  assert.match(failedBad.lastError, /password|credential|auth/i);
  assert.doesNotMatch(failedBad.lastError, /wrong/);
  const failedGhost = await until('ghost verify failed', async () => {
    const n = await node('ghost');
    return n.provisionState === 'verify failed' ? n : undefined;
  });
  assert.match(failedGhost.lastError, /unreachable|does not answer|not reach|timed out/i);
  // The BMC URL's password is in no answer and no event.
  const events = await fx.admin.get('/v1/events?limit=1000');
  assert.doesNotMatch(JSON.stringify(events.body) + JSON.stringify(await node('bad-pass')), /wrong@|:wrong/);
  for (const n of ['bad-pass', 'ghost']) assert.equal((await fx.admin.delete(`/v1/nodes/${n}`)).status, 204);
});

test('two nodes, one IPMI and one Redfish, are verified, inspected from the ramdisk and provided', async () => {
  for (const n of rig.nodes) {
    const res = await fx.admin.post('/v1/nodes', {
      name: n.name,
      bmc: n.bmcUrl,
      topology: { zone: 'z1', rack: n.name },
      labels: { bmc: n.name.replace('rack-', '') },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.doesNotMatch(JSON.stringify(res.body), /-pass/);
    assert.equal(res.body.provisionState, 'enroll');
  }
  // Illegal: provide before manage.
  const early = await fx.admin.post('/v1/nodes/rack-ipmi/provision', { action: 'provide' });
  assert.equal(early.status, 409);
  for (const n of rig.nodes) await act(n.name, 'manage');
  for (const n of rig.nodes) await settles(n.name, 'manageable', 60_000);
  for (const n of rig.nodes) await act(n.name, 'inspect');
  for (const n of rig.nodes) {
    const inspected = await settles(n.name, 'manageable');
    assert.ok(inspected.hardware, `${n.name} has hardware`);
    assert.equal(inspected.hardware.cpus, 1);
    assert.ok(
      inspected.hardware.memoryMib > 900 && inspected.hardware.memoryMib <= 1024,
      `${inspected.hardware.memoryMib}`,
    );
    assert.equal(inspected.hardware.disks[0]?.sizeBytes, 2 * 2 ** 30);
    assert.ok(
      inspected.hardware.nics.some(x => x.mac === rigNode(n.name).mac),
      `${n.name} NICs ${JSON.stringify(inspected.hardware.nics)} include ${rigNode(n.name).mac}`,
    );
    assert.deepEqual(inspected.capacity, { vcpus: 1, memoryMib: inspected.hardware.memoryMib, diskGib: 2 });
  }
  for (const n of rig.nodes) await act(n.name, 'provide');
  for (const n of rig.nodes) await settles(n.name, 'available');
});

const deployed = new Map<string, string>();

test('the busybox OCI image is deployed to each node by its path and boots from its own disk', async () => {
  for (const n of rig.nodes) {
    const id = await fx.run({
      kind: 'metal',
      name: `on-${n.name}`,
      image: TEST_IMAGE,
      command: ['sh', '-c', `echo metal-says-hello-from-$(hostname)`],
      resources: { vcpus: 1, memoryMib: 512, diskGib: 1 },
      constraints: [{ key: 'bmc', op: '==', value: n.name.replace('rack-', '') }],
    });
    deployed.set(n.name, id);
  }
  for (const [name, id] of deployed) {
    const out = await ranToEnd(id, `${name} prints its command's output`);
    assert.match(out, new RegExp(`metal-says-hello-from-on-${name}`));
    const n = await node(name);
    assert.equal(n.provisionState, 'active');
    assert.equal(n.instance, id);
    const i = (await fx.admin.get(`/v1/instances/${id}`)).body;
    assert.equal(i.node, n.id);
    assert.equal(i.resources.vcpus, 1);
    // It booted from its disk: the firmware says so, and QEMU was handed no kernel.
    const serial = readFileSync(rigNode(name).serialLog, 'utf8');
    assert.match(serial, /Booting from (Hard Disk|DVD\/CD)[\s\S]*metal-says-hello/);
    const pidfile = join(rigNode(name).dir, 'qemu.pid');
    if (existsSync(pidfile)) {
      const pid = readFileSync(pidfile, 'utf8').trim();
      if (existsSync(`/proc/${pid}/cmdline`))
        assert.doesNotMatch(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /-kernel/);
    }
  }
});

test('deleting a metal instance undeploys and cleans its node, which is offered again', async () => {
  for (const id of deployed.values()) assert.equal((await fx.admin.delete(`/v1/instances/${id}`)).status, 202);
  for (const n of rig.nodes) {
    const back = await settles(n.name, 'available');
    assert.equal(back.instance, null);
  }
  // Cleaning wiped the partition table the deploy wrote.
  const events = (await fx.admin.get('/v1/events?limit=1000')).body.items as { type: string; data: { to?: string } }[];
  const moves = events.filter(e => e.type === 'node.state').map(e => e.data.to);
  for (const s of ['deploying', 'active', 'undeploying', 'cleaning', 'available']) assert.ok(moves.includes(s), s);
});

test('a qcow2 disk image by URL is deployed with its config drive; a missing one fails the instance by name', async () => {
  // A whole-disk image made elsewhere: here the busybox image's disk, built as
  // the conductor would, turned qcow2 and served over plain HTTP.
  const work = tempDir('strata-metal-url-');
  const raw = await buildWholeDiskImage({
    image: TEST_IMAGE,
    dockerSocket: PODMAN_SOCKET,
    cacheDir: join(work, 'cache'),
    kernelDir: KERNEL_DIR,
  });
  const qcow2 = join(work, 'disk.qcow2');
  execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw.path, qcow2]);
  const served: string[] = [];
  const server = createServer((req, res) => {
    served.push(req.url ?? '');
    if (req.url !== '/images/busybox.qcow2') return void res.writeHead(404).end('no such image');
    res.writeHead(200, { 'content-length': statSync(qcow2).size });
    createReadStream(qcow2).pipe(res);
  });
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const missing = await fx.run({
      kind: 'metal',
      name: 'from-nowhere',
      image: `${base}/images/missing.qcow2`,
      resources: { vcpus: 1, memoryMib: 512, diskGib: 1 },
      constraints: [{ key: 'bmc', op: '==', value: 'redfish' }],
    });
    const failed = await fx.waitFor(missing, 'failed', 300_000);
    assert.match(failed.message, /missing\.qcow2 could not be fetched: the server answered 404/);
    const failedNode = await node('rack-redfish');
    assert.equal(failedNode.provisionState, 'deploy failed');
    assert.match(failedNode.lastError, /404/);
    assert.equal((await node('rack-ipmi')).provisionState, 'available', 'the other node is untouched');
    // Deleting the instance releases the node from its failed deploy: undeployed and cleaned.
    assert.equal((await fx.admin.delete(`/v1/instances/${missing}`)).status, 202);
    await until('the node is released', async () =>
      (await node('rack-redfish')).instance === null ? true : undefined,
    );
    await settles('rack-redfish', 'available');

    const id = await fx.run({
      kind: 'metal',
      name: 'from-url',
      image: `${base}/images/busybox.qcow2`,
      command: ['sh', '-c', 'echo booted-from-a-url-image-as-$(hostname)'],
      resources: { vcpus: 1, memoryMib: 512, diskGib: 1 },
      constraints: [{ key: 'bmc', op: '==', value: 'redfish' }],
    });
    const out = await ranToEnd(id, 'the URL image prints its command');
    assert.match(out, /booted-from-a-url-image-as-from-url/);
    assert.doesNotMatch(out, /metal-says-hello/, "the node's earlier tenant's output is not this instance's");
    assert.ok(served.includes('/images/busybox.qcow2'));
    assert.equal((await node('rack-redfish')).instance, id);
    assert.equal((await fx.admin.delete(`/v1/instances/${id}`)).status, 202);
    await settles('rack-redfish', 'available');
  } finally {
    server.close();
    removeDir(work);
  }
});

test('a conductor killed with -9 in the middle of a deploy picks it up again when it comes back', async () => {
  const serial = rigNode('rack-ipmi').serialLog;
  const seen = readFileSync(serial).length;
  const id = await fx.run({
    kind: 'metal',
    name: 'survivor',
    image: TEST_IMAGE,
    command: ['echo', 'survived-the-conductor'],
    resources: { vcpus: 1, memoryMib: 512, diskGib: 1 },
    constraints: [{ key: 'bmc', op: '==', value: 'ipmi' }],
  });
  // Wait until the node runs the deploy ramdisk: the deploy is under way on the machine.
  await until(
    'the deploy ramdisk is running',
    async () => (/strata-ramdisk/.test(readFileSync(serial).subarray(seen).toString()) ? true : undefined),
    300_000,
  );
  assert.equal((await node('rack-ipmi')).provisionState, 'deploying');
  fx.agent.kill('SIGKILL');
  await new Promise(r => fx.agent.once('exit', r));
  fx.restartAgent();
  const out = await until(
    'the deploy finished after the restart',
    async () => {
      const text = await logsOf(id);
      return /survived-the-conductor/.test(text) ? text : undefined;
    },
    900_000,
  );
  assert.match(out, /survived-the-conductor/);
  assert.equal((await node('rack-ipmi')).provisionState, 'active');
  assert.equal((await fx.admin.delete(`/v1/instances/${id}`)).status, 202);
  await settles('rack-ipmi', 'available');
});
