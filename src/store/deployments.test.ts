import { strict as assert } from 'node:assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { deploymentsOfInstances } from './deployments.ts';
import { openSqliteStore } from './sqlite/store.ts';

test('the deployments of more instances than SQLite takes variables in one statement', async () => {
  const store = await openSqliteStore({ file: join(mkdtempSync(join(tmpdir(), 'strata-store-')), 'db') });
  // A pass over a rollout of 10,000 replicas names each instance several times.
  const ids = Array.from({ length: 80_000 }, (_, i) => `ins_${i % 40_000}`);
  assert.deepEqual(await deploymentsOfInstances(store.db, ids), new Map());
  await store.close();
});
