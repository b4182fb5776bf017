import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ApiError } from '../lib/errors.ts';
import { healthCheckProblem, requireCapability } from './capabilities.ts';
import { container } from './container/index.ts';
import type { Kind } from './kind.ts';
import { vm } from './vm/index.ts';

test('what a kind lacks is a 400 that names the kind, the capability and what to do instead', () => {
  assert.doesNotThrow(() => requireCapability(container, 'exec', 'web'));
  assert.doesNotThrow(() => requireCapability(vm, 'console', 'box'));
  assert.throws(
    () => requireCapability(vm, 'exec', 'box'),
    (e: unknown) =>
      e instanceof ApiError &&
      e.status === 400 &&
      e.message ===
        'exec is not supported for kind vm (instance box): exec runs a process in a container; a VM has its serial console (strata logs, strata console)' &&
      JSON.stringify(e.details) === '{"kind":"vm","capability":"exec"}',
  );
  assert.throws(() => requireCapability(container, 'console', 'web'), /console is not supported for kind container/);
  const frozenless: Kind = { ...container, capabilities: { ...container.capabilities, pause: false }, hints: {} };
  assert.throws(
    () => requireCapability(frozenless, 'pause', 'x'),
    /^Error: pause is not supported for kind container \(instance x\)$/,
  );
});

test('a health check its kind cannot run is a problem of the spec', () => {
  assert.equal(healthCheckProblem(container, 'exec'), undefined);
  assert.equal(healthCheckProblem(vm, 'http'), undefined);
  assert.deepEqual(healthCheckProblem(vm, 'exec'), {
    field: 'body.healthCheck.type',
    message:
      "exec health checks are not supported for kind vm (it takes http and tcp checks): its host checks a VM from outside, over the VM's address",
  });
});
