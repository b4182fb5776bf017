import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { restartDecision } from './restart-policy.ts';

test('never restarts nothing', () => {
  assert.deepEqual(restartDecision({ policy: 'never' }, 1, 0), { restart: false });
});

test('on-failure restarts non-zero exits up to maxRetries, with doubling delays', () => {
  const p = { policy: 'on-failure' as const, maxRetries: 3 };
  assert.deepEqual(restartDecision(p, 0, 0), { restart: false });
  assert.deepEqual(restartDecision(p, 1, 0), { restart: true, delaySeconds: 1 });
  assert.deepEqual(restartDecision(p, 137, 2), { restart: true, delaySeconds: 4 });
  assert.deepEqual(restartDecision(p, 1, 3), { restart: false });
});

test('always restarts clean exits too, and the delay is capped', () => {
  assert.deepEqual(restartDecision({ policy: 'always' }, 0, 1), { restart: true, delaySeconds: 2 });
  assert.deepEqual(restartDecision({ policy: 'always' }, 0, 20), { restart: true, delaySeconds: 300 });
});
