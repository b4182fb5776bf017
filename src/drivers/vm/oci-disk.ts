// One image, two isolation levels: an OCI image a container would run becomes
// a VM's root disk. The container runtime pulls it (the same pull, registry
// credentials and progress as for containers); its filesystem is exported,
// unpacked, and written into an ext4 filesystem with `mkfs.ext4 -d`, stored as
// a qcow2 base cached per image id, so every VM of that image shares it.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exportRootfs, type ImageProcess, type OciSource, resolveOciImage } from '../oci-rootfs.ts';

export { type ImageProcess, type OciSource, processArgv } from '../oci-rootfs.ts';

const run = promisify(execFile);

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
  const { id, process } = await resolveOciImage(src, ref, progress);
  const path = join(cacheDir, `${id}.qcow2`);
  if (existsSync(path)) return { path, process };
  // One conversion per image at a time; the others wait for it.
  let job = converting.get(id);
  if (!job) {
    job = convert(src, ref, id, path, cacheDir, progress).finally(() => converting.delete(id));
    converting.set(id, job);
  }
  await job;
  return { path, process };
}

async function convert(
  src: OciSource,
  ref: string,
  id: string,
  path: string,
  cacheDir: string,
  progress?: (message: string) => void,
): Promise<void> {
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(cacheDir, '.convert-'));
  try {
    progress?.(`turning ${ref} into a VM disk`);
    const rootfs = join(work, 'rootfs');
    mkdirSync(rootfs);
    // By id: the tag may move meanwhile, and the disk is cached under this id.
    await exportRootfs(src, id, rootfs, 'vm-disk-export');
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
    rmSync(work, { recursive: true, force: true });
  }
}
