import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { RateLimiter } from './rate-limit.ts';

test('a bucket gives its burst, then refills at its rate, per key', () => {
  const rl = new RateLimiter({ perSecond: 2, burst: 3 });
  const t = 1_000_000;
  assert.deepEqual([rl.take('a', t), rl.take('a', t), rl.take('a', t)], [0, 0, 0]);
  assert.equal(rl.take('a', t), 1, 'empty: one second until the next');
  assert.equal(rl.take('b', t), 0, 'another key has its own bucket');
  assert.equal(rl.take('a', t + 500), 0, 'half a second refills one at 2/s');
  assert.equal(rl.take('a', t + 500), 1);
  assert.equal(rl.empty('a', t + 500) > 0, true);
  assert.equal(rl.empty('a', t + 5000), 0);
});
