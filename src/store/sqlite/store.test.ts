import { strict as assert } from 'node:assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import SQLite from 'better-sqlite3';
import { chargeTo, type CpuTally } from '../../lib/cpu-account.ts';
import { openSqliteStore } from './store.ts';
import type { EventRow } from '../schema.ts';

const user = (name: string) => ({ id: `usr_${name}`, name, cluster_admin: 0, created_at: 'now' });

test('concurrent writes commit together; a failing one leaves nothing and the rest stand', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'strata-store-')), 'db');
  const store = await openSqliteStore({ file });
  // A second connection sees only what is committed: if the writes shared one
  // commit, none of them sees another's row through it, and once that commit
  // is done all 19 appear together.
  const other = new SQLite(file, { readonly: true });
  const committedUsers = () => (other.prepare('SELECT count(*) AS n FROM users').get() as { n: number }).n;
  const seenByOther: number[] = [];
  const seen: EventRow[] = [];
  store.onEvent(e => seen.push(e));
  const writes = Array.from({ length: 20 }, (_, i) =>
    store.write(async ({ trx, emit }) => {
      seenByOther.push(committedUsers());
      await trx
        .insertInto('users')
        .values(user(`u${i}`))
        .execute();
      emit({
        type: 'user.created',
        projectId: null,
        resourceType: 'user',
        resourceId: `usr_u${i}`,
        actor: 't',
        data: { name: `u${i}` },
      });
      if (i === 7) throw new Error('refused');
      return i;
    }),
  );
  const results = await Promise.allSettled(writes);
  assert.deepEqual(seenByOther, Array(20).fill(0), 'a write was committed before the others ran');
  assert.equal(committedUsers(), 19);
  other.close();
  assert.equal(results.filter(r => r.status === 'fulfilled').length, 19);
  assert.equal((results[7] as PromiseRejectedResult).reason.message, 'refused');
  const names = (await store.db.selectFrom('users').select('name').execute()).map(r => r.name).sort();
  assert.equal(names.length, 19);
  assert.ok(!names.includes('u7'));
  // Events: one per committed write, none for the refused one, in commit order.
  assert.equal(seen.length, 19);
  assert.ok(!seen.some(e => e.resource_id === 'usr_u7'));
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.seq > seen[i - 1]!.seq);
  assert.equal((await store.db.selectFrom('events').select('seq').execute()).length, 19);
  await store.close();
});

test('a write sees the writes queued before it', async () => {
  const store = await openSqliteStore({ file: ':memory:' });
  const a = store.write(async ({ trx }) => trx.insertInto('users').values(user('a')).execute());
  const b = store.write(async ({ trx }) => {
    const rows = await trx.selectFrom('users').select('name').execute();
    return rows.map(r => r.name);
  });
  await a;
  assert.deepEqual(await b, ['a']);
  await store.close();
});

test('a unique violation in one write of a group refuses only that write', async () => {
  const store = await openSqliteStore({ file: ':memory:' });
  const results = await Promise.allSettled([
    store.write(async ({ trx }) => trx.insertInto('users').values(user('x')).execute()),
    store.write(async ({ trx }) =>
      trx
        .insertInto('users')
        .values({ ...user('x'), id: 'usr_other' })
        .execute(),
    ),
    store.write(async ({ trx }) => trx.insertInto('users').values(user('y')).execute()),
  ]);
  assert.deepEqual(
    results.map(r => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  assert.equal((await store.db.selectFrom('users').select('id').execute()).length, 2);
  await store.close();
});

/** Spins until this process has used `ms` more of CPU, as a write's own work would. */
function burn(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const d = process.cpuUsage(start);
    if (d.user + d.system >= ms * 1000) return;
  }
}

test("a write's CPU is charged to the tally of the code that queued it, alone or in a group", async () => {
  const store = await openSqliteStore({ file: join(mkdtempSync(join(tmpdir(), 'strata-store-')), 'db') });
  const alone: CpuTally = { us: 0 };
  await chargeTo(alone, () => store.write(async () => burn(30)));
  assert.ok(alone.us >= 30_000 && alone.us < 200_000, `charged ${alone.us} us for 30 ms`);
  // In one group: each write's tally gets its own write's CPU, not its neighbours'.
  const light: CpuTally = { us: 0 };
  const heavy: CpuTally = { us: 0 };
  await Promise.all([
    chargeTo(light, () => store.write(async () => burn(1))),
    chargeTo(heavy, () => store.write(async () => burn(60))),
    store.write(async () => burn(60)),
  ]);
  assert.ok(heavy.us >= 60_000, `heavy charged ${heavy.us} us for 60 ms`);
  assert.ok(light.us < 30_000, `light charged ${light.us} us for 1 ms beside two of 60`);
  await store.close();
});

test('one write may emit more events than SQLite takes variables in one statement, in order', async () => {
  const store = await openSqliteStore({ file: join(mkdtempSync(join(tmpdir(), 'strata-store-')), 'db') });
  const seen: EventRow[] = [];
  store.onEvent(e => seen.push(e));
  // A deployment of 10,000 replicas creates them in one write, an event each.
  const n = 10_000;
  await store.write(async ({ emit }) => {
    for (let i = 0; i < n; i++)
      emit({
        type: 'user.created',
        projectId: null,
        resourceType: 'user',
        resourceId: `usr_${i}`,
        actor: 't',
        data: { name: `u${i}` },
      });
  });
  assert.equal(seen.length, n);
  assert.deepEqual(
    seen.map(e => e.resource_id),
    Array.from({ length: n }, (_, i) => `usr_${i}`),
  );
  assert.ok(seen.every((e, i) => i === 0 || e.seq === seen[i - 1]!.seq + 1));
  await store.close();
});
