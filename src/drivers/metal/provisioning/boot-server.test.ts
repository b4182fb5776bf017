// The boot server's protocol, with an HTTP client playing iPXE and the ramdisk.
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import type { Hardware } from '../types.ts';
import { BootServer, FileTable } from './boot-server.ts';
import { SessionRegistry } from './sessions.ts';

let dir: string;
let server: BootServer;
let sessions: SessionRegistry;
let files: FileTable;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'strata-boot-'));
  mkdirSync(join(dir, 'deploy'));
  writeFileSync(join(dir, 'deploy', 'vmlinuz'), 'kernel bytes');
  writeFileSync(join(dir, 'deploy', 'initramfs.cpio.gz'), 'ramdisk bytes');
  writeFileSync(join(dir, 'secret'), 'not to be served');
  sessions = new SessionRegistry();
  files = new FileTable();
  server = await BootServer.start({ address: '127.0.0.1', port: 0, deployDir: join(dir, 'deploy'), sessions, files });
});
after(async () => {
  sessions.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  for (const s of sessions.sessions()) s.close();
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(method: string, path: string, body?: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.baseUrl}${path}`, { method }, res => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', reject);
    if (body !== undefined) req.setHeader('content-type', 'application/json');
    req.end(body);
  });
}

const hw = (macs: string[]): Hardware => ({
  cpus: 2,
  memoryMib: 1024,
  disks: [{ name: 'vda', sizeBytes: 8 * 2 ** 30 }],
  nics: macs.map((mac, i) => ({ name: `eth${i}`, mac })),
});

const tokenOf = (url: string) => url.split('/').pop()!;
const signal = () => AbortSignal.timeout(5000);

test('iPXE without a MAC is told to ask again with the MAC of the NIC it booted from', async () => {
  const r = await call('GET', '/ipxe');
  assert.equal(r.status, 200);
  assert.equal(r.body, `#!ipxe\nchain ${server.baseUrl}/ipxe?mac=\${netX/mac}\n`);
});

test('a MAC armed for a node gets the deploy ramdisk with its boot URL; others are told nothing is armed', async () => {
  const s = await sessions.armNetwork('node-1', ['52:54:00:AA:BB:01'], { action: 'inspect' });
  const r = await call('GET', '/ipxe?mac=52:54:00:aa:bb:01');
  assert.equal(r.status, 200);
  assert.match(r.body, /^#!ipxe\n/);
  assert.ok(
    r.body.includes(
      `kernel ${server.baseUrl}/deploy/vmlinuz initrd=ramdisk console=ttyS0,115200 strata.url=${s.url}\n`,
    ),
  );
  assert.ok(r.body.includes(`initrd --name ramdisk ${server.baseUrl}/deploy/initramfs.cpio.gz\nboot\n`));
  assert.match(s.url, new RegExp(`^${server.baseUrl}/ramdisk/[0-9a-f]{32}$`));
  const other = await call('GET', '/ipxe?mac=52:54:00:aa:bb:02');
  assert.match(other.body, /no boot is armed for 52:54:00:aa:bb:02\nexit\n$/);
  assert.doesNotMatch(other.body, /kernel/);
  s.close();
  assert.doesNotMatch((await call('GET', '/ipxe?mac=52:54:00:aa:bb:01')).body, /kernel/);
});

test('a node armed with no MACs takes the first unknown MAC only, and a second such arm waits for it to close', async () => {
  const first = await sessions.armNetwork('new-1', [], { action: 'inspect' });
  let secondArmed = false;
  const second = sessions.armNetwork('new-2', [], { action: 'inspect' }).then(s => {
    secondArmed = true;
    return s;
  });
  const a = await call('GET', '/ipxe?mac=52:54:00:00:00:0a');
  assert.ok(a.body.includes(first.url));
  // The same MAC again (a second boot) still finds it; another unknown MAC does not.
  assert.ok((await call('GET', '/ipxe?mac=52:54:00:00:00:0a')).body.includes(first.url));
  assert.doesNotMatch((await call('GET', '/ipxe?mac=52:54:00:00:00:0b')).body, /kernel/);
  // The ramdisk reports two NICs: both MACs are the node's now, and known to the network.
  const hello = await call(
    'POST',
    `/ramdisk/${tokenOf(first.url)}/hello`,
    JSON.stringify(hw(['52:54:00:00:00:0a', '52:54:00:00:00:0c'])),
  );
  assert.equal(hello.status, 204);
  assert.deepEqual(
    (await first.hello(signal())).nics.map(n => n.mac),
    ['52:54:00:00:00:0a', '52:54:00:00:00:0c'],
  );
  assert.ok((await call('GET', '/ipxe?mac=52:54:00:00:00:0c')).body.includes(first.url));
  assert.equal(secondArmed, false);
  first.close();
  const s2 = await second;
  // A known MAC is never taken by a boot armed for an unknown one.
  assert.doesNotMatch((await call('GET', '/ipxe?mac=52:54:00:00:00:0c')).body, /kernel/);
  assert.ok((await call('GET', '/ipxe?mac=52:54:00:00:00:0d')).body.includes(s2.url));
});

test('the ramdisk says hello, takes its task, reports done; a closed or unknown token answers 404', async () => {
  const s = await sessions.armNetwork('node-2', ['52:54:00:00:01:01'], {
    action: 'deploy',
    imageUrl: 'http://172.30.250.1:8080/files/abc',
    configDriveUrl: null,
  });
  const t = tokenOf(s.url);
  assert.equal((await call('POST', `/ramdisk/${t}/hello`, JSON.stringify(hw(['52:54:00:00:01:01'])))).status, 204);
  assert.deepEqual(await s.hello(signal()), hw(['52:54:00:00:01:01']));
  const task = await call('GET', `/ramdisk/${t}/task`);
  assert.equal(task.status, 200);
  assert.equal(task.body, '{"action":"deploy","imageUrl":"http://172.30.250.1:8080/files/abc","configDriveUrl":""}');
  const done = await call(
    'POST',
    `/ramdisk/${t}/done`,
    JSON.stringify({ ok: false, message: 'image download failed: 404' }),
  );
  assert.equal(done.status, 204);
  assert.deepEqual(await s.done(signal()), { ok: false, message: 'image download failed: 404' });
  s.close();
  for (const [m, p] of [
    ['GET', 'task'],
    ['POST', 'hello'],
    ['POST', 'done'],
  ] as const)
    assert.equal((await call(m, `/ramdisk/${t}/${p}`, m === 'POST' ? '{}' : undefined)).status, 404);
  assert.equal((await call('GET', `/ramdisk/${'0'.repeat(32)}/task`)).status, 404);
});

test('bad bodies are refused and change nothing', async () => {
  const s = await sessions.armNetwork('node-3', ['52:54:00:00:02:01'], { action: 'clean' });
  const t = tokenOf(s.url);
  const bad = [
    'not json',
    '{}',
    JSON.stringify({ ...hw([]), extra: 1 }),
    JSON.stringify({ ...hw(['zz:54:00:00:02:01']) }),
    JSON.stringify({ ...hw([]), cpus: -1 }),
    JSON.stringify({ ...hw([]), disks: [{ name: 'vda; rm -rf /', sizeBytes: 1 }] }),
  ];
  for (const b of bad) assert.equal((await call('POST', `/ramdisk/${t}/hello`, b)).status, 400, b);
  const big = JSON.stringify({ ...hw([]), pad: 'x'.repeat(70 * 1024) });
  assert.equal((await call('POST', `/ramdisk/${t}/hello`, big)).status, 413);
  assert.equal((await call('POST', `/ramdisk/${t}/done`, JSON.stringify({ ok: 'yes', message: '' }))).status, 400);
  assert.equal(
    (await call('POST', `/ramdisk/${t}/done`, JSON.stringify({ ok: true, message: 'x'.repeat(3000) }))).status,
    400,
  );
  await assert.rejects(s.hello(AbortSignal.timeout(50)), { name: 'TimeoutError' });
  s.close();
  await assert.rejects(s.done(signal()), /closed/);
});

test('the deploy files and served files stream with their length; nothing else is reachable', async () => {
  const k = await call('GET', '/deploy/vmlinuz');
  assert.equal(k.status, 200);
  assert.equal(k.body, 'kernel bytes');
  assert.equal(k.headers['content-length'], '12');
  assert.equal((await call('GET', '/deploy/initramfs.cpio.gz')).body, 'ramdisk bytes');
  assert.equal((await call('GET', '/deploy/../secret')).status, 404);
  assert.equal((await call('GET', '/deploy/%2e%2e%2fsecret')).status, 404);
  const id = files.add(join(dir, 'secret'));
  const f = await call('GET', `/files/${id}`);
  assert.equal(f.status, 200);
  assert.equal(f.body, 'not to be served');
  assert.equal(f.headers['content-length'], '16');
  const head = await call('HEAD', `/files/${id}`);
  assert.equal(head.headers['content-length'], '16');
  files.delete(id);
  assert.equal((await call('GET', `/files/${id}`)).status, 404);
  assert.equal((await call('GET', '/files/nothing')).status, 404);
  assert.equal((await call('DELETE', '/ipxe')).status, 404);
});

test('arming a node again closes its earlier boot; a MAC cannot be armed for two nodes', async () => {
  const a = await sessions.armNetwork('node-4', ['52:54:00:00:03:01'], { action: 'inspect' });
  const b = await sessions.armNetwork('node-4', ['52:54:00:00:03:01'], { action: 'clean' });
  assert.equal(a.closed, true);
  assert.ok((await call('GET', '/ipxe?mac=52-54-00-00-03-01')).body.includes(b.url));
  await assert.rejects(
    sessions.armNetwork('node-5', ['52:54:00:00:03:01'], { action: 'inspect' }),
    /armed for node node-4/,
  );
  await assert.rejects(sessions.armNetwork('node-5', ['not-a-mac'], { action: 'inspect' }), /not a MAC/);
});
