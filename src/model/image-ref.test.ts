import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { isImageRef } from './image-ref.ts';

test('OCI references that registries accept are valid', () => {
  for (const ref of [
    'busybox',
    'busybox:latest',
    'library/busybox:1.36',
    '127.0.0.1:5000/library/busybox:latest',
    'localhost:5000/a/b/c',
    'registry.example.com/team/app-server:v1.2.3-rc_1',
    'ghcr.io/org/image__name:tag',
    '[::1]:5000/x',
    `busybox@sha256:${'a'.repeat(64)}`,
    `registry.example.com:443/a:b@sha256:${'f'.repeat(64)}`,
    'corrupt-1234',
  ]) {
    assert.equal(isImageRef(ref), true, ref);
  }
});

test('anything else is refused: traversal, queries, fragments, spaces, upper case, separators', () => {
  for (const ref of [
    '',
    '../../etc/passwd',
    '../../127.0.0.1:7399/x?',
    'a/../b',
    'busybox?x=1',
    'busybox#frag',
    'Busybox',
    'a b',
    'busybox:',
    ':latest',
    'busybox:-tag',
    '/abs/path',
    'a//b',
    'a/',
    '-busybox',
    'busybox\u0000x',
    'busybox\nx',
    `busybox:${'x'.repeat(129)}`,
    'a'.repeat(256),
    'busybox@sha256:abc',
    'http://registry/x',
  ]) {
    assert.equal(isImageRef(ref), false, JSON.stringify(ref));
  }
});
