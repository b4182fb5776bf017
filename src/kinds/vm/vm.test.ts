import { strict as assert } from 'node:assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { vm } from './index.ts';

test('a VM defaults to a microvm without a cloud-init seed', () => {
  assert.deepEqual(vm.options({}), { machine: 'microvm', cloudInit: null });
  assert.deepEqual(vm.options({ machine: 'q35', cloudInit: { userData: '#!/bin/sh' } }), {
    machine: 'q35',
    cloudInit: { userData: '#!/bin/sh' },
  });
});

test('--user-data and --ssh-key make one cloud-init seed; @FILE reads a key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-vm-flags-'));
  writeFileSync(join(dir, 'user-data'), '#cloud-config\n');
  writeFileSync(join(dir, 'key.pub'), 'ssh-ed25519 AAAA me@there\n');
  assert.deepEqual(
    vm.cli.spec({
      machine: 'q35',
      userData: join(dir, 'user-data'),
      sshKey: ['ssh-rsa BBBB', `@${join(dir, 'key.pub')}`],
    }),
    {
      machine: 'q35',
      cloudInit: { userData: '#cloud-config\n', sshAuthorizedKeys: ['ssh-rsa BBBB', 'ssh-ed25519 AAAA me@there'] },
    },
  );
  assert.deepEqual(vm.cli.spec({ user: 'root' }), {});
});

test('a VM shows its machine, accelerator and seed', () => {
  const rows = vm.show({
    machine: 'q35',
    cloudInit: { sshAuthorizedKeys: ['k'] },
    observed: { address: null, ports: [], health: null, accelerator: 'tcg' },
  });
  assert.deepEqual(rows, [
    ['Machine', 'q35'],
    ['Accelerator', 'tcg'],
    ['Cloud-init', 'seed with 1 SSH keys'],
  ]);
});
