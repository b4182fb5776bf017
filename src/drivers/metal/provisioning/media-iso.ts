// A virtual-media ISO per boot: isolinux starting the deploy kernel and
// ramdisk with the boot's URL on the kernel command line, for BMCs that
// insert an ISO from a URL (Redfish) instead of booting from the network.
// The node still gets its address by DHCP on the provisioning network.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Debian's isolinux and syslinux packages. */
export const ISOLINUX_BIN = '/usr/lib/ISOLINUX/isolinux.bin';
export const LDLINUX_C32 = '/usr/lib/syslinux/modules/bios/ldlinux.c32';

export function isolinuxConfig(kernelArgs: string): string {
  return [
    'SERIAL 0 115200',
    'DEFAULT strata',
    'PROMPT 0',
    'TIMEOUT 0',
    'LABEL strata',
    '  KERNEL /vmlinuz',
    '  INITRD /initrd.gz',
    `  APPEND ${kernelArgs}`,
    '',
  ].join('\n');
}

/** Writes `out`: a bootable ISO (El Torito, no emulation) of the deploy kernel and ramdisk in `deployDir`. */
export async function buildDeployIso(deployDir: string, kernelArgs: string, out: string): Promise<void> {
  const tree = `${out}.d`;
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  try {
    // Copies, not links: genisoimage writes the boot info table into isolinux.bin.
    copyFileSync(ISOLINUX_BIN, join(tree, 'isolinux.bin'));
    copyFileSync(LDLINUX_C32, join(tree, 'ldlinux.c32'));
    copyFileSync(join(deployDir, 'vmlinuz'), join(tree, 'vmlinuz'));
    copyFileSync(join(deployDir, 'initramfs.cpio.gz'), join(tree, 'initrd.gz'));
    writeFileSync(join(tree, 'isolinux.cfg'), isolinuxConfig(kernelArgs));
    mkdirSync(dirname(out), { recursive: true });
    await run('genisoimage', [
      '-quiet',
      '-o',
      out,
      '-b',
      'isolinux.bin',
      '-c',
      'boot.cat',
      '-no-emul-boot',
      '-boot-load-size',
      '4',
      '-boot-info-table',
      '-R',
      '-V',
      'STRATA_DEPLOY',
      tree,
    ]);
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}
