import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { inQueueOrder } from './queue.ts';

test('the queue: higher priority first, then the older, then the lower id', () => {
  const q = [
    { id: 'ins_c', priority: 0, createdAt: '2026-01-01T00:00:01.000Z' },
    { id: 'ins_b', priority: 0, createdAt: '2026-01-01T00:00:00.000Z' },
    { id: 'ins_a', priority: 0, createdAt: '2026-01-01T00:00:01.000Z' },
    { id: 'ins_d', priority: -5, createdAt: '2025-01-01T00:00:00.000Z' },
    { id: 'ins_e', priority: 7, createdAt: '2026-06-01T00:00:00.000Z' },
  ];
  assert.deepEqual(
    inQueueOrder(q, x => x).map(x => x.id),
    ['ins_e', 'ins_b', 'ins_a', 'ins_c', 'ins_d'],
  );
  assert.equal(q[0]!.id, 'ins_c', 'the input is left as it was');
});
