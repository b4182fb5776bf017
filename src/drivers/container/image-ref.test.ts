import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { splitImageRef } from './image-ref.ts';

test('image references split into repository and tag', () => {
  assert.deepEqual(splitImageRef('busybox'), { repo: 'busybox', tag: 'latest' });
  assert.deepEqual(splitImageRef('busybox:1.36'), { repo: 'busybox', tag: '1.36' });
  assert.deepEqual(splitImageRef('127.0.0.1:5000/library/busybox'), {
    repo: '127.0.0.1:5000/library/busybox',
    tag: 'latest',
  });
  assert.deepEqual(splitImageRef('127.0.0.1:5000/library/busybox:1.0'), {
    repo: '127.0.0.1:5000/library/busybox',
    tag: '1.0',
  });
  assert.deepEqual(splitImageRef('r.io/x@sha256:abc'), { repo: 'r.io/x', tag: 'sha256:abc' });
});
