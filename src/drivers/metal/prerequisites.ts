// What a conductor needs on its host (scripts/metal.sh installs it): root, the
// deploy ramdisk, the kernel deployed nodes boot, and the programs it runs.
// Named one by one, so that whoever lacks something is told what.
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const CONDUCTOR_COMMANDS = ['ip', 'ipmitool', 'dnsmasq', 'sfdisk', 'extlinux', 'genisoimage'] as const;

export async function onPath(cmd: string): Promise<boolean> {
  return run('sh', ['-c', 'command -v "$1"', 'sh', cmd]).then(
    () => true,
    () => false,
  );
}

/** The commands of `commands` that are not on PATH. */
export async function missingCommands(commands: readonly string[]): Promise<string[]> {
  const found = await Promise.all(commands.map(onPath));
  return commands.filter((_, i) => !found[i]);
}

/** What this host lacks to conduct nodes, in words; empty when it lacks nothing. */
export async function conductorMissing(o: { deployDir: string; kernelDir: string }): Promise<string[]> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const f of ['vmlinuz', 'initramfs.cpio.gz'])
    if (!existsSync(join(o.deployDir, f))) missing.push(join(o.deployDir, f));
  try {
    accessSync(o.kernelDir, constants.R_OK);
  } catch {
    missing.push(o.kernelDir);
  }
  missing.push(...(await missingCommands(CONDUCTOR_COMMANDS)));
  return missing;
}
