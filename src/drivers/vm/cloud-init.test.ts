import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { buildSeed, metaData } from './cloud-init.ts';

test('meta-data names the instance and carries the SSH keys', () => {
  const m = parse(metaData('ins_1', 'web', ['ssh-ed25519 AAAA me@laptop'])) as Record<string, unknown>;
  assert.deepEqual(m, {
    'instance-id': 'ins_1',
    'local-hostname': 'web',
    'public-keys': ['ssh-ed25519 AAAA me@laptop'],
  });
  assert.ok(!('public-keys' in (parse(metaData('ins_1', 'web', [])) as object)));
});

test('the seed is an ISO labelled cidata with meta-data and user-data', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-seed-'));
  try {
    const iso = join(dir, 'seed.iso');
    await buildSeed(iso, 'ins_1', 'web', { userData: '#!/bin/sh\necho hi\n' });
    const label = execFileSync('isoinfo', ['-d', '-i', iso], { encoding: 'utf8' });
    assert.match(label, /Volume id: cidata/);
    assert.equal(
      execFileSync('isoinfo', ['-R', '-x', '/user-data', '-i', iso], { encoding: 'utf8' }),
      '#!/bin/sh\necho hi\n',
    );
    assert.match(
      execFileSync('isoinfo', ['-R', '-x', '/meta-data', '-i', iso], { encoding: 'utf8' }),
      /local-hostname: web/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
