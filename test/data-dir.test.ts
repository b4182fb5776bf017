// The server's data directory holds the store (instances' environment
// included) and the admin token: private to the user Strata runs as.
import { strict as assert } from 'node:assert';
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { client, removeDir, startServerProcess, startTestServer, tempDir } from './helpers.ts';

const modeOf = (p: string) => statSync(p).mode & 0o777;

test('a data directory others could read is closed, and every file in it is 0600', async () => {
  const dir = tempDir('strata-datadir-');
  chmodSync(dir, 0o755);
  // A store file left readable by an earlier version.
  writeFileSync(join(dir, 'strata.db'), '', { mode: 0o644 });
  chmodSync(join(dir, 'strata.db'), 0o644);
  const srv = await startTestServer({ dataDir: dir });
  try {
    const admin = client(srv.url, srv.adminToken);
    assert.equal(
      (
        await admin.post('/v1/instances', {
          project: 'default',
          kind: 'container',
          image: 'busybox',
          env: { SECRET: 'x' },
        })
      ).status,
      201,
    );
    assert.equal(modeOf(dir), 0o700);
    for (const f of ['strata.db', 'strata.db-wal', 'strata.db-shm', 'admin.token'])
      assert.equal(modeOf(join(dir, f)), 0o600, f);
  } finally {
    await srv.close();
    removeDir(dir);
  }
});

test('a data directory others can write is refused, by the server and by the CLI', async () => {
  const dir = tempDir('strata-datadir-');
  chmodSync(dir, 0o777);
  try {
    await assert.rejects(
      startTestServer({ dataDir: dir }),
      /can be written by others \(mode 777\); make it private first: chmod 700/,
    );
    await assert.rejects(startServerProcess(dir), /can be written by others/);
    assert.equal(modeOf(dir), 0o777, 'left as it was');
  } finally {
    removeDir(dir);
  }
});
