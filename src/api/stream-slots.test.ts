import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ApiError } from '../lib/errors.ts';
import { StreamSlots } from './stream-slots.ts';

test('slots are capped per token and in all, and come back once each', () => {
  const slots = new StreamSlots({ perToken: 2, total: 3 });
  const a1 = slots.acquire('a');
  slots.acquire('a');
  assert.throws(
    () => slots.acquire('a'),
    (e: unknown) => e instanceof ApiError && e.status === 429 && /2 streams open/.test(e.message),
  );
  slots.acquire('b');
  assert.throws(() => slots.acquire('c'), /the server has 3 streams open/);
  a1();
  a1();
  assert.equal(slots.count('a'), 1);
  assert.equal(slots.count(), 2);
  slots.acquire('c');
  assert.equal(slots.count(), 3);
});
