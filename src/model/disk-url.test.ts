import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { isDiskImageUrl } from './disk-url.ts';
import { isImageRef } from './image-ref.ts';

test('http and https disk image URLs are accepted, with ports, paths and queries', () => {
  for (const url of [
    'http://images.example.com/debian-12.qcow2',
    'https://10.0.0.5:8443/disks/app.raw',
    'http://[fd00::1]:8080/a.img',
    'https://bucket.s3.example.com/disk.raw?X-Amz-Signature=ab%2Fcd&X-Amz-Expires=3600',
    'http://127.0.0.1:9000',
  ]) {
    assert.equal(isDiskImageUrl(url), true, url);
    assert.equal(isImageRef(url), false, `${url} is not also an OCI reference`);
  }
});

test('credentials, fragments, other schemes, spaces and control characters are refused', () => {
  for (const url of [
    'ftp://example.com/a.raw',
    'file:///etc/passwd',
    'http://user:pass@example.com/a.raw',
    'http://example.com/a.raw#frag',
    'http://example.com/a b.raw',
    'http://example.com/a\u0000.raw',
    'http://example.com/a\n.raw',
    'http://example.com:99999/a.raw',
    'http://-bad-.example/a',
    'http:/example.com/a',
    'busybox',
    `http://example.com/${'a'.repeat(2048)}`,
  ]) {
    assert.equal(isDiskImageUrl(url), false, JSON.stringify(url));
  }
});
