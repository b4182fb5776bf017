import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fetchDiskImage } from './fetch-disk.ts';

const dir = mkdtempSync(join(tmpdir(), 'strata-fetch-'));
const cacheDir = join(dir, 'cache');
const files = new Map<string, string>();
const gets = new Map<string, number>();
let server: Server;
let base: string;
const MIB = 1024 * 1024;

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

before(async () => {
  // A small raw disk with an MBR partition table, its qcow2, and things that are not disks.
  const raw = join(dir, 'disk.raw');
  execFileSync('truncate', ['-s', '4M', raw]);
  execFileSync('sfdisk', ['--quiet', raw], { input: 'label: dos\nstart=2048, type=83, bootable\n' });
  writeFileSync(raw, Buffer.from('strata'), { flag: 'r+' });
  execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, join(dir, 'disk.qcow2')]);
  execFileSync('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-b',
    '/etc/hostname',
    '-F',
    'raw',
    join(dir, 'backed.qcow2'),
  ]);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'huge.qcow2'), '64G']);
  writeFileSync(join(dir, 'page.html'), '<html>not a disk</html>\n'.repeat(100));
  writeFileSync(join(dir, 'disk.raw.gz'), execFileSync('gzip', ['-c', raw]));
  for (const f of ['disk.raw', 'disk.qcow2', 'backed.qcow2', 'huge.qcow2', 'page.html', 'disk.raw.gz'])
    files.set(`/${f}`, join(dir, f));
  files.set('/other/disk.raw', raw);
  server = createServer((req, res) => {
    const path = files.get(req.url ?? '');
    gets.set(req.url ?? '', (gets.get(req.url ?? '') ?? 0) + 1);
    if (!path) {
      res.writeHead(404).end('no such file');
      return;
    }
    const etag = `"${sha(path).slice(0, 16)}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304).end();
      return;
    }
    res.writeHead(200, { etag, 'content-type': 'application/octet-stream' }).end(readFileSync(path));
  });
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(async () => {
  await new Promise(r => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

test('a raw disk arrives as it is, and an unchanged one is not fetched again', async () => {
  const got = await fetchDiskImage({ url: `${base}/disk.raw`, cacheDir, maxBytes: 64 * MIB });
  assert.equal(got.sizeBytes, 4 * MIB);
  assert.equal(sha(got.path), sha(join(dir, 'disk.raw')));
  const again = await fetchDiskImage({ url: `${base}/disk.raw`, cacheDir, maxBytes: 64 * MIB });
  assert.deepEqual(again, got);
  assert.equal(gets.get('/disk.raw'), 2, 'asked twice, the second time answered 304');
});

test('a qcow2 disk is turned raw', async () => {
  const got = await fetchDiskImage({ url: `${base}/disk.qcow2`, cacheDir, maxBytes: 64 * MIB });
  assert.equal(got.sizeBytes, 4 * MIB);
  assert.equal(sha(got.path), sha(join(dir, 'disk.raw')));
});

test('clear errors: 404, not a disk, compressed, too big, backing files, bad URLs', async () => {
  const f = (path: string, maxBytes = 64 * MIB) => fetchDiskImage({ url: `${base}${path}`, cacheDir, maxBytes });
  await assert.rejects(f('/nope.raw'), /could not be fetched: the server answered 404/);
  await assert.rejects(f('/page.html'), /is not a disk image: neither qcow2 nor a raw disk/);
  await assert.rejects(f('/disk.raw.gz'), /gzip-compressed/);
  await assert.rejects(f('/disk.raw', MIB), /more than the 1048576 bytes allowed/, 'cached, still bounded');
  await assert.rejects(f('/other/disk.raw', MIB), /more than the 1048576 bytes allowed/);
  await assert.rejects(f('/huge.qcow2'), /unpacks to 68719476736 bytes/);
  await assert.rejects(f('/backed.qcow2'), /refers to other files/);
  await assert.rejects(
    fetchDiskImage({ url: 'file:///etc/passwd', cacheDir, maxBytes: MIB }),
    /file: URLs are not supported/,
  );
  await assert.rejects(
    fetchDiskImage({ url: 'http://user:secret@127.0.0.1:1/x?token=t', cacheDir, maxBytes: MIB }),
    (err: Error) => /could not be fetched/.test(err.message) && !/secret|token/.test(err.message),
  );
  const left = execFileSync('ls', ['-A', cacheDir], { encoding: 'utf8' }).split('\n').filter(Boolean);
  assert.ok(!left.some(n => n.startsWith('.fetch-')), `nothing half-made left: ${left.join(' ')}`);
});
