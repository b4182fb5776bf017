import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { SecretBox } from './secret-box.ts';

test('a sealed value opens only with its key and where it was sealed', () => {
  const box = new SecretBox(randomBytes(32));
  const sealed = box.seal('hunter2', 'sec_1');
  assert.doesNotMatch(sealed, /hunter2/);
  assert.notEqual(box.seal('hunter2', 'sec_1'), sealed, 'a fresh IV each time');
  assert.equal(box.open(sealed, 'sec_1'), 'hunter2');
  assert.throws(() => box.open(sealed, 'sec_2'), 'moved to another secret');
  assert.throws(() => new SecretBox(randomBytes(32)).open(sealed, 'sec_1'), 'another key');
  const [v, iv, tag, body] = sealed.split(':');
  const flipped = Buffer.from(body!, 'base64');
  flipped[0]! ^= 1;
  assert.throws(() => box.open([v, iv, tag, flipped.toString('base64')].join(':'), 'sec_1'), 'tampered');
});
