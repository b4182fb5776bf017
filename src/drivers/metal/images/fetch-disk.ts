// A whole-disk image a tenant gives by URL (raw, or qcow2 turned raw), for
// nodes deployed from an image that is not an OCI image. The download is
// bounded in size, checked to be a disk (a qcow2 header, or a partition table's
// boot signature), and cached per URL; a cached copy is revalidated with the
// server's ETag or Last-Modified, so an unchanged image is not fetched again.
import { createHash } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { sweepAbandoned, workDirPrefix } from './abandoned.ts';
import { run } from './run.ts';

export interface FetchDiskOptions {
  /** http(s) URL of a raw or qcow2 disk image */
  url: string;
  cacheDir: string;
  /** The largest disk accepted: bounds the download and, for qcow2, the disk it unpacks to. */
  maxBytes: number;
  signal?: AbortSignal;
}

export interface FetchedDisk {
  /** A raw disk image */
  path: string;
  sizeBytes: number;
}

interface Meta {
  url: string;
  etag: string | null;
  lastModified: string | null;
  format: 'raw' | 'qcow2';
  sizeBytes: number;
}

const fetching = new Map<string, Promise<FetchedDisk>>();

export async function fetchDiskImage(o: FetchDiskOptions): Promise<FetchedDisk> {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new Error('disk image: not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new Error(`disk image: ${url.protocol} URLs are not supported (http or https)`);
  const dir = join(o.cacheDir, `url-${createHash('sha256').update(url.href).digest('hex').slice(0, 32)}`);
  let job = fetching.get(dir);
  if (!job) {
    job = fetchInto(url, dir, o).finally(() => fetching.delete(dir));
    fetching.set(dir, job);
  }
  return job;
}

/** The URL as errors show it: no credentials, no query (it may hold a token). */
const shown = (u: URL): string => `${u.origin}${u.pathname}`;

async function fetchInto(url: URL, dir: string, o: FetchDiskOptions): Promise<FetchedDisk> {
  await sweepAbandoned(o.cacheDir);
  const cached = readMeta(dir);
  const headers: Record<string, string> = {};
  if (cached?.etag) headers['if-none-match'] = cached.etag;
  else if (cached?.lastModified) headers['if-modified-since'] = cached.lastModified;
  // Credentials in the URL become Basic authentication (fetch refuses them in the URL).
  const target = new URL(url);
  if (target.username || target.password) {
    const user = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
    headers.authorization = `Basic ${Buffer.from(user).toString('base64')}`;
    target.username = '';
    target.password = '';
  }
  let res: Response;
  try {
    res = await fetch(target, { headers, redirect: 'follow', ...(o.signal ? { signal: o.signal } : {}) });
  } catch (err) {
    throw new Error(`disk image ${shown(url)} could not be fetched: ${causeOf(err).replaceAll(url.href, shown(url))}`);
  }
  if (res.status === 304 && cached) {
    await res.body?.cancel();
    if (cached.sizeBytes > o.maxBytes)
      throw new Error(
        `disk image ${shown(url)} is ${cached.sizeBytes} bytes, more than the ${o.maxBytes} bytes allowed`,
      );
    return { path: join(dir, 'disk.raw'), sizeBytes: cached.sizeBytes };
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(
      `disk image ${shown(url)} could not be fetched: the server answered ${res.status} ${res.statusText}`,
    );
  }
  const length = Number(res.headers.get('content-length') ?? Number.NaN);
  if (length > o.maxBytes) {
    await res.body?.cancel();
    throw new Error(`disk image ${shown(url)} is ${length} bytes, more than the ${o.maxBytes} bytes allowed`);
  }
  mkdirSync(o.cacheDir, { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(o.cacheDir, workDirPrefix('fetch')));
  try {
    const download = join(work, 'download');
    await save(res, download, o.maxBytes, url);
    const format = detect(download, url);
    const out = join(work, 'out');
    mkdirSync(out);
    const raw = join(out, 'disk.raw');
    if (format === 'qcow2') await qcow2ToRaw(download, raw, o.maxBytes, url);
    else renameSync(download, raw);
    const meta: Meta = {
      url: url.href,
      etag: res.headers.get('etag'),
      lastModified: res.headers.get('last-modified'),
      format,
      sizeBytes: statSync(raw).size,
    };
    writeFileSync(join(out, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
    // Replaced in two renames: a reader holding the old path keeps its file.
    rmSync(join(work, 'old'), { recursive: true, force: true });
    try {
      renameSync(dir, join(work, 'old'));
    } catch {
      // nothing cached yet
    }
    renameSync(out, dir);
    return { path: join(dir, 'disk.raw'), sizeBytes: meta.sizeBytes };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function readMeta(dir: string): Meta | undefined {
  try {
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Meta;
    return statSync(join(dir, 'disk.raw')).size === meta.sizeBytes ? meta : undefined;
  } catch {
    return undefined;
  }
}

async function save(res: Response, path: string, maxBytes: number, url: URL): Promise<void> {
  const file = await open(path, 'w', 0o600);
  let n = 0;
  try {
    if (!res.body) throw new Error('the server sent no body');
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      n += chunk.length;
      if (n > maxBytes) throw new Error(`more than the ${maxBytes} bytes allowed`);
      await file.write(chunk);
    }
  } catch (err) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`disk image ${shown(url)} could not be fetched: ${causeOf(err)}`);
  } finally {
    await file.close();
  }
}

function detect(path: string, url: URL): 'raw' | 'qcow2' {
  const head = Buffer.alloc(4096);
  const fd = openSync(path, 'r');
  let got: number;
  try {
    got = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const not = (what: string) => new Error(`disk image ${shown(url)} is not a disk image: ${what}`);
  if (head.subarray(0, 4).equals(Buffer.from([0x51, 0x46, 0x49, 0xfb]))) return 'qcow2';
  if (head[0] === 0x1f && head[1] === 0x8b) throw not('it is gzip-compressed (give the uncompressed image)');
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
    throw not('it is xz-compressed (give the uncompressed image)');
  if (head.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])))
    throw not('it is zstd-compressed (give the uncompressed image)');
  // MBR and GPT (its protective MBR) disks both end their first sector with 55 AA.
  if (got < 512 || head[510] !== 0x55 || head[511] !== 0xaa)
    throw not('neither qcow2 nor a raw disk with a partition table');
  if (statSync(path).size % 512 !== 0) throw not('a raw disk is whole 512-byte sectors');
  return 'raw';
}

interface QemuImgInfo {
  format?: string;
  'virtual-size'?: number;
  'backing-filename'?: string;
  'format-specific'?: { data?: { 'data-file'?: string } };
}

async function qcow2ToRaw(src: string, dst: string, maxBytes: number, url: URL): Promise<void> {
  let info: QemuImgInfo;
  try {
    info = JSON.parse(await run('qemu-img', ['info', '--output=json', '-f', 'qcow2', src])) as QemuImgInfo;
  } catch (err) {
    throw new Error(`disk image ${shown(url)} is not a usable qcow2 image: ${causeOf(err)}`);
  }
  // A backing file or an external data file would make qemu-img read a file of this host's.
  if (info['backing-filename'] || info['format-specific']?.data?.['data-file'])
    throw new Error(`disk image ${shown(url)} refers to other files (a backing or data file): give a standalone image`);
  const size = info['virtual-size'] ?? 0;
  if (size > maxBytes)
    throw new Error(`disk image ${shown(url)} unpacks to ${size} bytes, more than the ${maxBytes} bytes allowed`);
  await run('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', src, dst]);
}

function causeOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
}
