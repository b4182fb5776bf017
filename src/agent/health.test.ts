import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { initialHealth, nextHealth, type Health } from './health.ts';

const rules = { retries: 3, startPeriodSeconds: 10 };
const ok = { ok: true, output: 'fine' };
const bad = { ok: false, output: 'refused' };

test('a success makes the instance healthy at once; failures in a row up to retries make it unhealthy', () => {
  let h: Health = nextHealth(initialHealth(), ok, rules, 20_000, 't1');
  assert.deepEqual(h, { status: 'healthy', failingStreak: 0, changedAt: 't1', output: 'fine' });
  h = nextHealth(h, bad, rules, 21_000, 't2');
  assert.equal(h.status, 'healthy', 'one failure is not enough');
  assert.equal(h.failingStreak, 1);
  h = nextHealth(h, bad, rules, 22_000, 't3');
  h = nextHealth(h, bad, rules, 23_000, 't4');
  assert.deepEqual(h, { status: 'unhealthy', failingStreak: 3, changedAt: 't4', output: 'refused' });
  h = nextHealth(h, ok, rules, 24_000, 't5');
  assert.deepEqual(h, { status: 'healthy', failingStreak: 0, changedAt: 't5', output: 'fine' });
});

test('failures inside the start period do not count; a success there still counts', () => {
  let h = initialHealth();
  for (let i = 0; i < 5; i++) h = nextHealth(h, bad, rules, 1000 * i, `t${i}`);
  assert.deepEqual(h, initialHealth(), 'still starting, no streak');
  h = nextHealth(h, ok, rules, 6000, 't6');
  assert.equal(h.status, 'healthy');
});

test('an unchanged health is the same object, so nothing is reported', () => {
  const h = nextHealth(initialHealth(), ok, rules, 20_000, 't1');
  assert.equal(nextHealth(h, ok, rules, 21_000, 't2'), h);
});
