import { strict as assert } from 'node:assert';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { prepareRoot } from './root-layout.ts';

const dir = mkdtempSync(join(tmpdir(), 'strata-root-layout-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test("an image's /boot that leads out of its filesystem becomes a real directory, and what it pointed to is untouched", () => {
  const outside = join(dir, 'outside');
  mkdirSync(join(outside, 'extlinux'), { recursive: true });
  writeFileSync(join(outside, 'vmlinuz'), 'host kernel');
  for (const [name, target] of [
    ['abs', outside],
    ['rel', '../outside'],
  ] as const) {
    const rootfs = join(dir, name);
    mkdirSync(rootfs);
    symlinkSync(target, join(rootfs, 'boot'));
    prepareRoot(rootfs, 'console=ttyS0');
    assert.ok(lstatSync(join(rootfs, 'boot')).isDirectory());
    assert.ok(lstatSync(join(rootfs, 'boot', 'extlinux')).isDirectory());
    assert.match(readFileSync(join(rootfs, 'boot', 'extlinux', 'extlinux.conf'), 'utf8'), /APPEND console=ttyS0\n/);
  }
  assert.equal(readFileSync(join(outside, 'vmlinuz'), 'utf8'), 'host kernel');
  assert.deepEqual(readdirSync(join(outside, 'extlinux')), []);
});

test("the image's own boot loader files make way; its other files and links stay", () => {
  const rootfs = join(dir, 'own');
  mkdirSync(join(rootfs, 'boot', 'extlinux'), { recursive: true });
  writeFileSync(join(rootfs, 'boot', 'extlinux', 'extlinux.conf'), 'DEFAULT theirs');
  writeFileSync(join(rootfs, 'boot', 'vmlinuz'), 'their kernel');
  writeFileSync(join(rootfs, 'boot', 'config-6.1'), 'kept');
  symlinkSync('/var/tmp', join(rootfs, 'tmp'));
  prepareRoot(rootfs, 'quiet');
  assert.deepEqual(readdirSync(join(rootfs, 'boot')).sort(), ['config-6.1', 'extlinux']);
  assert.match(readFileSync(join(rootfs, 'boot', 'extlinux', 'extlinux.conf'), 'utf8'), /DEFAULT strata/);
  assert.ok(lstatSync(join(rootfs, 'tmp')).isSymbolicLink(), "the image's /tmp link is its own");
  for (const d of ['proc', 'sys', 'dev', 'run']) assert.ok(lstatSync(join(rootfs, d)).isDirectory());
});

test('a /tmp the builder makes is writable by all, sticky', () => {
  const rootfs = join(dir, 'bare');
  mkdirSync(rootfs);
  prepareRoot(rootfs, '');
  assert.equal(lstatSync(join(rootfs, 'tmp')).mode & 0o7777, 0o1777);
});
