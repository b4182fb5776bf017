import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ApiError } from '../lib/errors.ts';
import { decodeCursor, encodeCursor, pageOf, parseSelector } from './paging.ts';

test('label selectors parse equality, inequality and existence', () => {
  assert.deepEqual(parseSelector('tier=web, env!=prod,gpu,a==b'), [
    { key: 'tier', op: '=', value: 'web' },
    { key: 'env', op: '!=', value: 'prod' },
    { key: 'gpu', op: 'exists' },
    { key: 'a', op: '=', value: 'b' },
  ]);
  assert.deepEqual(parseSelector(undefined), []);
});

test('malformed selectors are a 400, not a crash', () => {
  for (const bad of ['=x', 'a=b=c', 'a b', ',', 'k!']) {
    assert.throws(
      () => parseSelector(bad),
      (e: unknown) => e instanceof ApiError && e.status === 400,
      bad,
    );
  }
});

test('cursors round-trip and garbage is refused', () => {
  assert.equal(decodeCursor(encodeCursor('ins_x')), 'ins_x');
  assert.equal(decodeCursor(undefined), undefined);
  for (const bad of [
    '',
    'garbage',
    Buffer.from('{"x":1}').toString('base64url'),
    Buffer.from('[1]').toString('base64url'),
  ]) {
    assert.throws(
      () => decodeCursor(bad),
      (e: unknown) => e instanceof ApiError && e.status === 400,
      bad,
    );
  }
});

test('a page past the limit carries the cursor of its last item', () => {
  const rows = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
  const p = pageOf(rows, 2);
  assert.deepEqual(p.rows, [{ id: 'a' }, { id: 'b' }]);
  assert.equal(decodeCursor(p.nextCursor!), 'b');
  assert.equal(pageOf(rows, 3).nextCursor, null);
});
