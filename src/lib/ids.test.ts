import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { hasPrefix, newId } from './ids.ts';

test('ids are prefixed, 26 base32 characters, and strictly increasing', () => {
  const ids = Array.from({ length: 5000 }, () => newId('ins'));
  for (const id of ids) {
    assert.match(id, /^ins_[0-9a-hjkmnp-tv-z]{26}$/);
    assert.ok(hasPrefix(id, 'ins'));
  }
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `${ids[i]} > ${ids[i - 1]}`);
  assert.equal(new Set(ids).size, ids.length);
});

test('the time part sorts with the clock', async () => {
  const a = newId('prj');
  await new Promise(r => setTimeout(r, 5));
  const b = newId('prj');
  assert.ok(a.slice(4, 14) < b.slice(4, 14));
});
