import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { kinds } from '../kinds/index.ts';
import { kindSpec } from '../kinds/schemas.ts';
import { compileBody, describeValidation } from './validation.ts';
import { instanceSpecValidator } from './instance-spec.ts';

const validate = instanceSpecValidator();
const messageOf = (body: unknown): string | undefined => {
  if (validate(body)) return undefined;
  return describeValidation(validate.errors ?? [], 'body').message;
};
const base = { project: 'p', image: 'busybox' };

test('a spec is checked against its own kind only, with defaults filled in', () => {
  const spec: Record<string, unknown> = { ...base, kind: 'container', ports: [{ containerPort: 80 }] };
  assert.equal(messageOf(spec), undefined);
  assert.deepEqual(spec.ports, [{ containerPort: 80, protocol: 'tcp' }]);
  assert.equal(messageOf({ ...base, kind: 'vm', machine: 'q35', cloudInit: { sshAuthorizedKeys: ['k'] } }), undefined);
});

test('one clear message names the field at fault', () => {
  assert.equal(messageOf([]), 'body must be object');
  assert.equal(messageOf(base), "body must have required property 'kind'");
  assert.equal(messageOf({ ...base, kind: 'bogus' }), 'body.kind must be one of "container", "vm", "metal"');
  assert.equal(messageOf({ ...base, kind: 7 }), 'body.kind must be one of "container", "vm", "metal"');
  assert.equal(messageOf({ ...base, kind: 'container', machine: 'q35' }), 'body.machine applies to VMs only (kind vm)');
  assert.equal(
    messageOf({ ...base, kind: 'vm', user: 'nobody' }),
    'body.user applies to containers only (kind container): a VM has its own address, disk and users',
  );
  assert.equal(messageOf({ ...base, kind: 'vm', machine: 'pc' }), 'body.machine must be one of "microvm", "q35"');
  assert.equal(messageOf({ ...base, kind: 'container', surely_unknown: 1 }), 'body has unknown field "surely_unknown"');
  assert.equal(
    messageOf({ ...base, kind: 'container', ports: [{ containerPort: 0 }] }),
    'body.ports.0.containerPort must be >= 1',
  );
  assert.equal(
    messageOf({ kind: 'vm', image: 'busybox', tmpfs: [] }),
    'body.tmpfs applies to containers only (kind container): a VM has its own address, disk and users (and 1 more)',
  );
});

test("each kind's spec schema compiles, takes a minimal spec and refuses another kind's", () => {
  for (const k of kinds) {
    const validate = compileBody(kindSpec(k));
    assert.ok(validate({ project: 'p', kind: k.name, image: 'busybox' }), JSON.stringify(validate.errors));
    assert.equal(validate({ project: 'p', kind: k.name, image: 'busybox', surely_unknown: 1 }), false);
    const other = kinds.find(o => o !== k);
    if (other) assert.equal(validate({ project: 'p', kind: other.name, image: 'busybox' }), false);
  }
});

test('priority is a whole number in -1000..1000 (default 0); waitForCapacity a boolean (default true)', () => {
  const spec: Record<string, unknown> = { ...base, kind: 'container' };
  assert.equal(messageOf(spec), undefined);
  assert.deepEqual([spec.priority, spec.waitForCapacity], [0, true]);
  assert.equal(messageOf({ ...base, kind: 'vm', priority: -1000, waitForCapacity: false }), undefined);
  assert.equal(messageOf({ ...base, kind: 'container', priority: 1001 }), 'body.priority must be <= 1000');
  assert.equal(messageOf({ ...base, kind: 'container', priority: -1001 }), 'body.priority must be >= -1000');
  assert.equal(messageOf({ ...base, kind: 'container', priority: 1.5 }), 'body.priority must be integer');
  assert.equal(
    messageOf({ ...base, kind: 'container', waitForCapacity: 'no' }),
    'body.waitForCapacity must be boolean',
  );
});
