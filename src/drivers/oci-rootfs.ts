// An OCI image's root filesystem as a directory, for the kinds that boot it
// (vm: a root disk; metal: a whole-disk image). The container runtime pulls it
// (the same pull, registry credentials and progress as for containers) and
// exports it from a created, never started, container.
import { spawn } from 'node:child_process';
import type Docker from 'dockerode';

/** What a disk builder needs from the container runtime. */
export interface OciSource {
  docker: Docker;
  ensureImage(ref: string, progress?: (message: string) => void): Promise<void>;
}

/** The parts of the image config a guest init applies, as a container runtime would. */
export interface ImageProcess {
  entrypoint: string[];
  cmd: string[];
  env: Record<string, string>;
  workingDir: string;
}

export interface OciImage {
  /** The image id (the digest of its config): names its conversions in a cache. */
  id: string;
  process: ImageProcess;
}

/** Pulls the image unless present, and reads its id and process settings. */
export async function resolveOciImage(
  src: OciSource,
  ref: string,
  progress?: (message: string) => void,
): Promise<OciImage> {
  await src.ensureImage(ref, progress);
  const info = await src.docker.getImage(ref).inspect();
  const cfg = info.Config ?? {};
  const env: Record<string, string> = {};
  for (const kv of cfg.Env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return {
    id: info.Id.replace(/^sha256:/, ''),
    process: {
      entrypoint: asArray(cfg.Entrypoint),
      cmd: asArray(cfg.Cmd),
      env,
      workingDir: cfg.WorkingDir || '/',
    },
  };
}

function asArray(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === 'string' && v) return ['/bin/sh', '-c', v];
  return [];
}

/** Unpacks the image's filesystem into `dir` (which must exist and be empty), owners and modes kept. */
export async function exportRootfs(src: OciSource, ref: string, dir: string, purpose: string): Promise<void> {
  // A created (never started) container is the documented way to read an image's filesystem.
  const container = await src.docker.createContainer({
    Image: ref,
    Cmd: ['/nonexistent'],
    Labels: { 'io.strata.purpose': purpose },
  });
  try {
    const stream = (await container.export()) as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      const tar = spawn('tar', ['-x', '-p', '--numeric-owner', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      tar.stderr.on('data', (d: Buffer) => (err += d.toString()));
      tar.once('error', reject);
      tar.once('exit', code =>
        code === 0 ? resolve() : reject(new Error(`unpacking the image failed: ${err.trim()}`)),
      );
      stream.pipe(tar.stdin);
      stream.on('error', reject);
    });
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}

/** The argv a container runtime would run: the entrypoint, then the spec's command or else the image's. */
export function processArgv(image: ImageProcess, command: string[]): string[] {
  return [...image.entrypoint, ...(command.length > 0 ? command : image.cmd)];
}
