import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parse } from 'yaml';
import { buildConfigDrive, type ConfigDriveSettings } from './config-drive.ts';

const dir = mkdtempSync(join(tmpdir(), 'strata-cidata-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const read = (iso: string, path: string): string =>
  execFileSync('isoinfo', ['-R', '-x', path, '-i', iso], { encoding: 'utf8' });

const base: ConfigDriveSettings = {
  instanceId: 'ins_1',
  hostname: 'node-1',
  sshKeys: [],
  command: ['true'],
  env: {},
};

test('the drive is an ISO labelled cidata with meta-data, user-data and Strata settings', async () => {
  const iso = await buildConfigDrive(join(dir, 'a'), {
    ...base,
    sshKeys: ['ssh-ed25519 AAAAC3 me@laptop', 'from="10.0.0.1" ssh-rsa AAAAB3 "quoted": #x'],
    userData: '#!/bin/sh\necho "hi" $HOME\n',
  });
  assert.match(execFileSync('isoinfo', ['-d', '-i', iso], { encoding: 'utf8' }), /Volume id: cidata/);
  assert.deepEqual(parse(read(iso, '/meta-data')), {
    'instance-id': 'ins_1',
    'local-hostname': 'node-1',
    'public-keys': ['ssh-ed25519 AAAAC3 me@laptop', 'from="10.0.0.1" ssh-rsa AAAAB3 "quoted": #x'],
  });
  assert.equal(read(iso, '/user-data'), '#!/bin/sh\necho "hi" $HOME\n');
  assert.equal(
    read(iso, '/strata/authorized_keys'),
    'ssh-ed25519 AAAAC3 me@laptop\nfrom="10.0.0.1" ssh-rsa AAAAB3 "quoted": #x\n',
  );
  assert.match(read(iso, '/strata/config'), /^STRATA_MODE='run'$/m);
});

test('no command: the image init runs', async () => {
  const iso = await buildConfigDrive(join(dir, 'b'), { ...base, command: [] });
  assert.match(read(iso, '/strata/config'), /^STRATA_MODE='init'$/m);
  assert.equal(read(iso, '/user-data'), '#cloud-config\n{}\n');
});

test("hostile command, environment and working dir reach the command intact, and nothing runs in metal-init's shell", async () => {
  const marker = join(dir, 'pwned');
  const hostile = `'; touch ${marker}; echo '$(touch ${marker})\`touch ${marker}\`\nline2 "q" \\ $HOME`;
  const iso = await buildConfigDrive(join(dir, 'c'), {
    ...base,
    command: ['sh', '-c', 'printf "%s|" "$1" "$V" "$(pwd)"', 'arg0', hostile],
    env: { V: hostile, [`$(touch ${marker})`]: 'x' },
    workingDir: '/tmp',
  });
  // Source the settings as metal-init does, with a `chroot` on the PATH that
  // just runs the command here (chroot NEWROOT BUSYBOX sh -c ...: the sh -c part).
  const bin = join(dir, 'bin');
  execFileSync('mkdir', ['-p', bin]);
  writeFileSync(join(bin, 'chroot'), '#!/bin/sh\nshift 2\nexec "$@"\n');
  chmodSync(join(bin, 'chroot'), 0o755);
  const config = read(iso, '/strata/config').replace(/'PATH=[^']*'/, `'PATH=${bin}:/usr/bin:/bin'`);
  const out = execFileSync('sh', ['-c', `${config}\nprintf '%s|' "$STRATA_HOSTNAME"; strata_command`], {
    encoding: 'utf8',
  });
  assert.equal(out, `node-1|${hostile}|${hostile}|/tmp|`);
  assert.ok(!existsSync(marker), 'nothing in a value ran');
});

test('settings that cannot go on a drive are refused with a reason', async () => {
  const bad: [Partial<ConfigDriveSettings>, RegExp][] = [
    [{ hostname: 'a;reboot' }, /not a hostname/],
    [{ hostname: '$(id)' }, /not a hostname/],
    [{ hostname: `${'a'.repeat(64)}` }, /not a hostname/],
    [{ hostname: '-lead' }, /not a hostname/],
    [{ instanceId: '../x' }, /instance id/],
    [{ sshKeys: ['ssh-ed25519 AAAA\nssh-rsa BBBB'] }, /one line/],
    [{ sshKeys: [''] }, /one line/],
    [{ env: { A: 'x\0y' } }, /NUL/],
    [{ command: ['a\0'] }, /NUL/],
    [{ env: { 'A=B': 'x' } }, /cannot name a variable/],
    [{ workingDir: 'relative' }, /absolute/],
    [{ userData: 'x'.repeat(300 * 1024) }, /user data is larger/],
    [{ command: ['x'.repeat(300 * 1024)] }, /larger than/],
  ];
  for (const [patch, why] of bad) {
    await assert.rejects(
      buildConfigDrive(join(dir, 'bad'), { ...base, ...patch }),
      why,
      JSON.stringify(patch).slice(0, 80),
    );
  }
  assert.ok(!existsSync(join(dir, 'bad', 'config-drive.iso')), 'nothing written for a refused drive');
});
