// The agent starts Podman's API service itself when nothing answers on its
// socket, brings it back when it dies, and leaves it running when the agent
// stops. Uses its own socket, never the shared one other tests use.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, test } from 'node:test';
import Docker from 'dockerode';
import { pingSocket } from '../src/agent/runtime-service.ts';
import { startContainerFixture, until, type ContainerFixture } from './helpers.ts';

const dir = `/run/strata-test-${process.pid}`;
const socket = `${dir}/podman.sock`;
let fx: ContainerFixture | undefined;

/** Pids of the service serving our socket (and only ours). */
const servicePids = (): number[] => {
  try {
    return execFileSync('pgrep', ['-f', `system service --time=0 unix://${socket}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
};

after(async () => {
  await fx?.close();
  for (const pid of servicePids()) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('no runtime answering: the agent starts one, restarts it after a crash, and leaves it running when it stops', async () => {
  assert.equal(await pingSocket(socket), false, 'nothing answers on the fresh socket');
  fx = await startContainerFixture('runtime-node', { agentArgs: ['--docker-socket', socket] });
  assert.equal(await pingSocket(socket), true, 'the agent started the service');
  const [first] = servicePids();
  assert.ok(first, 'a service process serves the socket');

  const docker = new Docker({ socketPath: socket });
  const id = await fx.run({ command: ['echo', 'via the started service'], stopGraceSeconds: 1 });
  await fx.waitFor(id, 'stopped');
  const [c] = await docker.listContainers({ all: true, filters: { label: [`io.strata.instance=${id}`] } });
  assert.ok(c, 'the container was made through the agent-started service');

  process.kill(first, 'SIGKILL');
  await until('the service is back', async () => {
    const pids = servicePids();
    return pids.length > 0 && pids[0] !== first && (await pingSocket(socket)) ? true : undefined;
  }, 30_000);
  const again = await fx.run({ command: ['true'] });
  await fx.waitFor(again, 'stopped');

  fx.agent.kill('SIGTERM');
  await new Promise((r) => fx!.agent.once('exit', r));
  assert.equal(await pingSocket(socket), true, 'the service outlives the agent');
});

test('--no-manage-runtime leaves a silent socket alone and offers no containers', async () => {
  const quiet = `${dir}/quiet.sock`;
  const f = await startContainerFixture('runtime-off', { agentArgs: ['--docker-socket', quiet, '--no-manage-runtime'], drivers: [] });
  try {
    const host = (await f.admin.get(`/v1/hosts/${f.hostId}`)).body;
    assert.ok(!host.drivers.includes('container'), `drivers: ${host.drivers.join(', ')}`);
    assert.equal(await pingSocket(quiet), false);
  } finally {
    await f.close();
  }
});
