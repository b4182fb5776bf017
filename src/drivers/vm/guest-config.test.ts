import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { guestConfig, guestConfigDisk, shq } from './guest-config.ts';

/**
 * A directory with a `chroot` that just runs the command here (chroot NEWROOT
 * /dev/.strata/busybox sh -c ...: only the sh -c part), to put on the
 * instance's PATH when sourcing a config in a real shell.
 */
function fakeChrootDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'strata-cfg-'));
  writeFileSync(join(dir, 'chroot'), '#!/bin/sh\nshift 2\nexec "$@"\n');
  chmodSync(join(dir, 'chroot'), 0o755);
  return dir;
}

test('values are single-quoted so a spec cannot inject shell', () => {
  assert.equal(shq("it's"), `'it'\\''s'`);
  // Source the fragment in a real shell, with a `chroot` (found through the
  // instance's PATH) that just runs the command here: words and environment
  // arrive intact, nothing in them is run by the guest init's shell.
  const bin = fakeChrootDir();
  try {
    const text = guestConfig({
      hostname: 'web',
      mode: 'run',
      command: ['sh', '-c', 'echo "$X"; echo \'q\'; [ "$(pwd)" = /tmp ] || echo wrong-dir'],
      env: { X: '$(touch /tmp/pwned)', PATH: `${bin}:/usr/bin:/bin` },
      workingDir: '/tmp',
    });
    const script = `${text}\nprintf '%s|' "$STRATA_MODE" "$STRATA_HOSTNAME" "$STRATA_WORKDIR"; strata_command`;
    const out = execFileSync('sh', ['-c', script], { encoding: 'utf8' });
    assert.equal(out, 'run|web|/tmp|$(touch /tmp/pwned)\nq\n');
    assert.ok(!/STRATA_PROBE/.test(text));
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});

test('the disk is whole sectors, NUL-padded, starting with the config', () => {
  const disk = guestConfigDisk({ hostname: 'h', mode: 'init', command: [], env: {}, workingDir: '/' });
  assert.equal(disk.length % 512, 0);
  assert.ok(disk.toString('utf8').startsWith('#strata-config\n'));
  assert.equal(disk.at(-1), 0);
});

test("an image's environment names reach env(1) as words, never the shell", () => {
  const dir = fakeChrootDir();
  const marker = join(dir, 'pwned');
  try {
    const text = guestConfig({
      hostname: 'h',
      mode: 'run',
      command: ['sh', '-c', 'echo "$GOOD"'],
      env: { [`$(touch ${marker})`]: 'x', 'A B;touch': 'y', GOOD: 'ok', PATH: `${dir}:/usr/bin:/bin` },
      workingDir: '/',
    });
    const out = execFileSync('sh', ['-c', `${text}\nstrata_command`], { encoding: 'utf8' });
    assert.equal(out, 'ok\n');
    assert.throws(() => execFileSync('test', ['-e', marker]), 'nothing in a name ran');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
