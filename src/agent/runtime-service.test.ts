import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { pingSocket, restartDelayMs, serviceCommand } from './runtime-service.ts';

test("the service command is Podman's API service on the agent's socket", () => {
  assert.deepEqual(serviceCommand({ socketPath: '/run/x/podman.sock' }), ['podman', 'system', 'service', '--time=0', 'unix:///run/x/podman.sock']);
  assert.deepEqual(serviceCommand({ socketPath: '/s', command: ['my-podman', 'serve'] }), ['my-podman', 'serve', 'unix:///s']);
});

test('restarts back off from 1 s, doubling, to at most 30 s', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(restartDelayMs), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
});

test('a socket nobody serves does not answer', async () => {
  assert.equal(await pingSocket('/nonexistent/strata.sock', 200), false);
});
