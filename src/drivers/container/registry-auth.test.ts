import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { registryOf } from './image-ref.ts';
import { RegistryAuth } from './registry-auth.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

test('the registry of a reference', () => {
  assert.equal(registryOf('busybox'), 'docker.io');
  assert.equal(registryOf('library/busybox:1'), 'docker.io');
  assert.equal(registryOf('127.0.0.1:5000/library/busybox'), '127.0.0.1:5000');
  assert.equal(registryOf('ghcr.io/org/app@sha256:abc'), 'ghcr.io');
  assert.equal(registryOf('localhost/app'), 'localhost');
});

test('credentials come from an auth file, matched by registry', () => {
  const auth = new RegistryAuth({
    auths: {
      '127.0.0.1:5001': { auth: b64('ci:s3cret:with:colons') },
      'https://index.docker.io/v1/': { auth: b64('hub:pw') },
      'ghcr.io': { username: 'me', password: 'tok' },
      'broken.example': { auth: b64('no-colon') },
    },
  });
  assert.deepEqual(auth.forImage('127.0.0.1:5001/app:1'), {
    username: 'ci',
    password: 's3cret:with:colons',
    serveraddress: '127.0.0.1:5001',
  });
  assert.equal(auth.forImage('busybox')?.username, 'hub');
  assert.equal(auth.forImage('ghcr.io/x/y')?.password, 'tok');
  assert.equal(auth.forImage('127.0.0.1:5000/app'), undefined);
  assert.equal(auth.forImage('broken.example/app'), undefined);
  assert.equal(auth.size, 3);
});
