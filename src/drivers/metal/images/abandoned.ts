// Work directories of builds whose process is gone (a crash, a kill) are named
// `.PREFIX-PID-*` inside a cache: whatever such a build left mounted or
// attached is released, and its directory removed, when the cache is next used.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './run.ts';

export function workDirPrefix(kind: 'build' | 'fetch'): string {
  return `.${kind}-${process.pid}-`;
}

export async function sweepAbandoned(cacheDir: string): Promise<void> {
  if (!existsSync(cacheDir)) return;
  for (const name of readdirSync(cacheDir)) {
    const m = /^\.(?:build|fetch)-(\d+)-/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    const work = join(cacheDir, name);
    const mnt = join(work, 'mnt');
    if (mounted(mnt)) await run('umount', [mnt]).catch(() => undefined);
    const loops = await run('losetup', ['-j', join(work, 'disk.raw')]).catch(() => '');
    for (const line of loops.split('\n')) {
      const dev = line.split(':')[0];
      if (dev?.startsWith('/dev/loop')) await run('losetup', ['-d', dev]).catch(() => undefined);
    }
    // Still mounted (umount failed): leave it rather than delete inside a mount.
    if (!mounted(mnt)) rmSync(work, { recursive: true, force: true });
  }
}

function mounted(path: string): boolean {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some(l => l.split(' ')[4] === path);
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
