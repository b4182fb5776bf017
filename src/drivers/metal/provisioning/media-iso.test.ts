// The per-boot ISO: bootable by isolinux, the boot's URL on the kernel command line.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildDeployIso, isolinuxConfig } from './media-iso.ts';

const dir = mkdtempSync(join(tmpdir(), 'strata-iso-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('isolinux boots the deploy kernel at once, on the serial console, with the arguments given', () => {
  const cfg = isolinuxConfig('console=ttyS0,115200 strata.url=http://10.0.0.1:8080/ramdisk/abc');
  assert.match(cfg, /^SERIAL 0 115200$/m);
  assert.match(cfg, /^PROMPT 0$/m);
  assert.match(cfg, /^ {2}KERNEL \/vmlinuz$/m);
  assert.match(cfg, /^ {2}INITRD \/initrd\.gz$/m);
  assert.match(cfg, /^ {2}APPEND console=ttyS0,115200 strata\.url=http:\/\/10\.0\.0\.1:8080\/ramdisk\/abc$/m);
});

test('the ISO is El Torito bootable and carries the kernel, the ramdisk and the configuration', async () => {
  writeFileSync(join(dir, 'vmlinuz'), 'kernel');
  writeFileSync(join(dir, 'initramfs.cpio.gz'), 'ramdisk');
  const iso = join(dir, 'media', 'boot.iso');
  await buildDeployIso(dir, 'strata.url=http://10.0.0.1:8080/ramdisk/abc', iso);
  assert.ok(existsSync(iso));
  assert.equal(existsSync(`${iso}.d`), false, 'the tree it was made from is gone');
  assert.match(execFileSync('isoinfo', ['-d', '-i', iso], { encoding: 'utf8' }), /El Torito VD version 1 found/);
  const read = (p: string) => execFileSync('isoinfo', ['-R', '-x', p, '-i', iso], { encoding: 'utf8' });
  assert.equal(read('/vmlinuz'), 'kernel');
  assert.equal(read('/initrd.gz'), 'ramdisk');
  assert.match(read('/isolinux.cfg'), /APPEND strata\.url=http:\/\/10\.0\.0\.1:8080\/ramdisk\/abc/);
  await assert.rejects(buildDeployIso(join(dir, 'nothing'), 'x', join(dir, 'none.iso')), /ENOENT/);
});
