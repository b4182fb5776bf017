import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { containerFlagSpec, parsePublish, parseTmpfs } from './cli.ts';
import { container } from './index.ts';

test('one host port published twice, or one path mounted twice, is refused by name', () => {
  assert.deepEqual(container.check({ ports: [{ containerPort: 80 }, { containerPort: 81 }] }), []);
  assert.deepEqual(
    container.check({
      ports: [
        { containerPort: 80, hostPort: 8080 },
        { containerPort: 81, hostPort: 8080, protocol: 'udp' },
        { containerPort: 82, hostPort: 8080 },
      ],
      tmpfs: [{ path: '/t' }, { path: '/u' }, { path: '/t', sizeMib: 4 }],
    }),
    [
      { field: 'body.ports.2.hostPort', message: '0.0.0.0:8080/tcp is published twice' },
      { field: 'body.tmpfs.2.path', message: '/t is mounted twice' },
    ],
  );
});

test('options fill the defaults a container runs with', () => {
  assert.deepEqual(container.options({ ports: [{ containerPort: 53, protocol: 'udp' }] }), {
    user: '',
    ports: [{ containerPort: 53, protocol: 'udp', hostPort: 0 }],
    readOnlyRootfs: false,
    tmpfs: [],
  });
});

test('flags map to spec fields as docker run takes them', () => {
  assert.deepEqual(parsePublish('127.0.0.1:8080:80/udp', parsePublish('80')), [
    { containerPort: 80 },
    { containerPort: 80, hostPort: 8080, hostIp: '127.0.0.1', protocol: 'udp' },
  ]);
  assert.throws(() => parsePublish('http'), /expected \[HOST_IP:\]/);
  assert.deepEqual(parseTmpfs('/run:16', parseTmpfs('/tmp')), [{ path: '/tmp' }, { path: '/run', sizeMib: 16 }]);
  assert.throws(() => parseTmpfs('tmp'), /absolute PATH/);
  assert.deepEqual(containerFlagSpec({ user: '1000:1000', readOnly: true, publish: [{ containerPort: 80 }] }), {
    user: '1000:1000',
    ports: [{ containerPort: 80 }],
    readOnlyRootfs: true,
  });
  assert.deepEqual(containerFlagSpec({ machine: 'q35' }), {});
});
