// One image, two isolation levels: an OCI image a container would run becomes
// a VM's root disk. The container runtime pulls it (the same pull, registry
// credentials and progress as for containers); its filesystem is exported,
// unpacked, and written into an ext4 filesystem with `mkfs.ext4 -d`, stored as
// a qcow2 base cached per image id, so every VM of that image shares it.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';

const run = promisify(execFile);

/** What the VM driver needs from the container runtime. */
export interface OciSource {
  docker: Docker;
  ensureImage(ref: string, progress?: (message: string) => void): Promise<void>;
}

/** The parts of the image config a VM's guest init applies, as a container runtime would. */
export interface ImageProcess {
  entrypoint: string[];
  cmd: string[];
  env: Record<string, string>;
  workingDir: string;
}

export interface OciDisk {
  path: string;
  process: ImageProcess;
}

const converting = new Map<string, Promise<void>>();

export async function ociDisk(
  src: OciSource,
  ref: string,
  cacheDir: string,
  progress?: (message: string) => void,
): Promise<OciDisk> {
  await src.ensureImage(ref, progress);
  const info = await src.docker.getImage(ref).inspect();
  const cfg = info.Config ?? {};
  const env: Record<string, string> = {};
  for (const kv of cfg.Env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const process: ImageProcess = {
    entrypoint: asArray(cfg.Entrypoint),
    cmd: asArray(cfg.Cmd),
    env,
    workingDir: cfg.WorkingDir || '/',
  };
  const id = info.Id.replace(/^sha256:/, '');
  const path = join(cacheDir, `${id}.qcow2`);
  if (existsSync(path)) return { path, process };
  // One conversion per image at a time; the others wait for it.
  let job = converting.get(id);
  if (!job) {
    job = convert(src, ref, path, cacheDir, progress).finally(() => converting.delete(id));
    converting.set(id, job);
  }
  await job;
  return { path, process };
}

function asArray(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === 'string' && v) return ['/bin/sh', '-c', v];
  return [];
}

async function convert(
  src: OciSource,
  ref: string,
  path: string,
  cacheDir: string,
  progress?: (message: string) => void,
): Promise<void> {
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(cacheDir, '.convert-'));
  // A created (never started) container is the documented way to read an image's filesystem.
  const container = await src.docker.createContainer({
    Image: ref,
    Cmd: ['/nonexistent'],
    Labels: { 'io.strata.purpose': 'vm-disk-export' },
  });
  try {
    progress?.(`turning ${ref} into a VM disk`);
    const rootfs = join(work, 'rootfs');
    mkdirSync(rootfs);
    const stream = (await container.export()) as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      const tar = spawn('tar', ['-x', '-p', '--numeric-owner', '-C', rootfs], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      tar.stderr.on('data', (d: Buffer) => (err += d.toString()));
      tar.once('error', reject);
      tar.once('exit', code =>
        code === 0 ? resolve() : reject(new Error(`unpacking the image failed: ${err.trim()}`)),
      );
      stream.pipe(tar.stdin);
      stream.on('error', reject);
    });
    for (const d of ['proc', 'sys', 'dev', 'tmp', 'run']) mkdirSync(join(rootfs, d), { recursive: true });
    const { stdout } = await run('du', ['-sb', rootfs]);
    const used = Number(stdout.split(/\s/)[0]);
    // Room to write: twice the content and at least 1 GiB (sparse: costs nothing until used).
    const size = Math.max(1024 ** 3, Math.ceil((used * 2) / 1024 ** 2) * 1024 ** 2);
    const raw = join(work, 'root.raw');
    await run('truncate', ['-s', String(size), raw]);
    await run('mkfs.ext4', ['-q', '-F', '-L', 'strata-root', '-d', rootfs, raw]);
    await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, `${path}.new`]);
    renameSync(`${path}.new`, path);
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

/** The argv a container runtime would run: the entrypoint, then the spec's command or else the image's. */
export function processArgv(image: ImageProcess, command: string[]): string[] {
  return [...image.entrypoint, ...(command.length > 0 ? command : image.cmd)];
}
