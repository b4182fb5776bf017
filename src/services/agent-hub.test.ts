import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { openSqliteStore } from '../store/sqlite/store.ts';
import type { EventInput } from '../store/store.ts';
import { AgentHub } from './agent-hub.ts';

test('a waiting agent wakes when an event names its host to wake, not another host, not a host in the data', async () => {
  const store = await openSqliteStore({ file: ':memory:' });
  const hub = new AgentHub(store);
  const v = hub.version('h1');
  const waiting = hub.wait('h1', v, 10_000);
  const emit = (e: EventInput) => store.write(async ctx => ctx.emit(e));
  const base = { projectId: null, resourceType: 'instance', resourceId: 'i', actor: 't' } as const;
  await emit({ ...base, type: 'instance.deleting', host: 'h2', data: { hostId: 'h2' } });
  // A host id in an event's data is news for users, not a wake-up.
  await emit({ ...base, type: 'instance.deleting', host: null, data: { hostId: 'h1' } });
  // Subscribers hear of an event before its write resolves: nothing woke h1.
  assert.equal(hub.version('h1'), v);
  await emit({ ...base, type: 'instance.deleting', host: 'h1', data: { hostId: 'h1' } });
  await waiting;
  assert.notEqual(hub.version('h1'), v);
  await store.close();
});

test('a stale version answers at once; the current one waits out its timeout', async () => {
  const store = await openSqliteStore({ file: ':memory:' });
  const hub = new AgentHub(store);
  const t0 = Date.now();
  await hub.wait('h1', 'other-boot.0', 10_000);
  assert.ok(Date.now() - t0 < 50);
  const t1 = Date.now();
  await hub.wait('h1', hub.version('h1'), 100);
  assert.ok(Date.now() - t1 >= 90);
  await store.close();
});

test('closing answers every waiting agent at once, and any that asks afterwards', async () => {
  const store = await openSqliteStore({ file: ':memory:' });
  const hub = new AgentHub(store);
  const waits = [hub.wait('h1', hub.version('h1'), 60_000), hub.wait('h2', hub.version('h2'), 60_000)];
  let answered = 0;
  for (const w of waits) void w.then(() => answered++);
  await new Promise(r => setImmediate(r));
  assert.equal(answered, 0);
  const t0 = Date.now();
  hub.close();
  await Promise.all(waits);
  await hub.wait('h3', hub.version('h3'), 60_000);
  assert.ok(Date.now() - t0 < 1000);
  await store.close();
});
