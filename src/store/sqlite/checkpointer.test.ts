import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openDatabase } from './db.ts';
import { startCheckpointer } from './checkpointer.ts';

test('stopping the checkpointer while its worker starts waits for the worker to end; stopping again is at once', {
  timeout: 10_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-checkpointer-'));
  try {
    const { close } = await openDatabase({ file: join(dir, 'strata.db') });
    await close();
    const c = startCheckpointer(join(dir, 'strata.db'));
    const ended: string[] = [];
    await c.stop().then(() => ended.push('first'));
    await c.stop().then(() => ended.push('again'));
    assert.deepEqual(ended, ['first', 'again']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
