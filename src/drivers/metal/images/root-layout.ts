// What the builder changes in an image's files before they become the disk's
// root: mount points metal-init needs, and a /boot of Strata's. The image's
// files came from a tenant and the builder runs as root: /boot, which it
// writes into through a mount on this host, must be a real directory of that
// filesystem, never a symlink leading out of it.
import { chmodSync, lstatSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function prepareRoot(rootfs: string, append: string): void {
  // Made when missing; whatever the image has there (a symlink too) is its own business.
  for (const d of ['proc', 'sys', 'dev', 'run', 'tmp']) {
    if (exists(join(rootfs, d))) continue;
    mkdirSync(join(rootfs, d));
    if (d === 'tmp') chmodSync(join(rootfs, d), 0o1777);
  }
  const boot = join(rootfs, 'boot');
  if (!isRealDir(boot)) rmSync(boot, { recursive: true, force: true });
  // The image's own boot loader files make way for Strata's.
  for (const f of ['extlinux', 'vmlinuz', 'initrd.img']) rmSync(join(boot, f), { recursive: true, force: true });
  mkdirSync(join(boot, 'extlinux'), { recursive: true });
  writeFileSync(join(boot, 'extlinux', 'extlinux.conf'), extlinuxConf(append));
}

export function extlinuxConf(append: string): string {
  return [
    'SERIAL 0 115200',
    'DEFAULT strata',
    'PROMPT 0',
    'TIMEOUT 0',
    'LABEL strata',
    '  LINUX /boot/vmlinuz',
    '  INITRD /boot/initrd.img',
    `  APPEND ${append}`,
    '',
  ].join('\n');
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function isRealDir(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}
