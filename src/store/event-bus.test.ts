import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { InProcessEventBus } from './event-bus.ts';
import type { StoredEvent } from './store.ts';

const event = (seq: number): StoredEvent => ({
  seq,
  at: '2026-01-01T00:00:00.000Z',
  project_id: null,
  type: 'user.created',
  resource_type: 'user',
  resource_id: `usr_${seq}`,
  actor: 't',
  data: '{}',
  host: null,
});

test('every subscriber hears published events in order, until it unsubscribes', () => {
  const bus = new InProcessEventBus();
  const a: number[] = [];
  const b: number[] = [];
  const offA = bus.subscribe(e => a.push(e.seq));
  bus.subscribe(e => b.push(e.seq));
  bus.publish([event(1), event(2)]);
  offA();
  bus.publish([event(3)]);
  assert.deepEqual(a, [1, 2]);
  assert.deepEqual(b, [1, 2, 3]);
});
