import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { openDatabase } from '../store/db.ts';
import { Store } from '../store/store.ts';
import { AgentHub } from './agent-hub.ts';

test('a waiting agent wakes when an event names its host, not another', async () => {
  const store = new Store(await openDatabase({ file: ':memory:' }));
  const hub = new AgentHub(store);
  const v = hub.version('h1');
  let woke = false;
  const waiting = hub.wait('h1', v, 10_000).then(() => (woke = true));
  await store.write(async ({ emit }) =>
    emit({ type: 'x', projectId: null, resourceType: 'instance', resourceId: 'i', actor: 't', data: { hostId: 'h2' } }),
  );
  await new Promise(r => setTimeout(r, 20));
  assert.equal(woke, false);
  await store.write(async ({ emit }) =>
    emit({ type: 'x', projectId: null, resourceType: 'instance', resourceId: 'i', actor: 't', data: { hostId: 'h1' } }),
  );
  await waiting;
  assert.notEqual(hub.version('h1'), v);
  await store.close();
});

test('a stale version answers at once; the current one waits out its timeout', async () => {
  const store = new Store(await openDatabase({ file: ':memory:' }));
  const hub = new AgentHub(store);
  const t0 = Date.now();
  await hub.wait('h1', 'other-boot.0', 10_000);
  assert.ok(Date.now() - t0 < 50);
  const t1 = Date.now();
  await hub.wait('h1', hub.version('h1'), 100);
  assert.ok(Date.now() - t1 >= 90);
  await store.close();
});
