// The agent starts Podman's API service itself when nothing answers on its
// socket, brings it back when it dies, and leaves it running when the agent
// stops or is killed. Every test uses its own socket under a fresh
// /run/strata-test-<random>/, never the shared one other tests use, and kills
// only the services it started, by pid.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Docker from 'dockerode';
import { pino } from 'pino';
import { pingSocket, probeSocket, RuntimeService, runsCommand, serviceCommand } from '../src/agent/runtime-service.ts';
import { startContainerFixture, until, type ContainerFixture } from './helpers.ts';

const dir = `/run/strata-test-${randomBytes(6).toString('hex')}`;
/** Every service pid a test saw, killed (by pid, if still that service) at the end. */
const seen = new Map<number, string[]>();
const fixtures: { fx: ContainerFixture; socket: string }[] = [];

function track(pid: number | undefined, socketPath: string): number {
  assert.ok(pid, 'a service pid');
  seen.set(pid, serviceCommand({ socketPath }));
  return pid;
}

function sessionOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
}

after(async () => {
  for (const { fx, socket } of fixtures) {
    // The agent first, so it cannot start another service meanwhile; then the one it ran last.
    if (fx.agent.exitCode === null && fx.agent.signalCode === null) {
      fx.agent.kill('SIGKILL');
      await new Promise(r => fx.agent.once('exit', r));
    }
    try {
      track(Number(readFileSync(join(fx.agentData, 'podman', 'service.pid'), 'utf8')), socket);
    } catch {
      // it never started one
    }
    await fx.close().catch(() => undefined);
  }
  for (const [pid, cmd] of seen) if (runsCommand(pid, cmd)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('RuntimeService with real Podman: starts the API service, brings it back after SIGKILL, leaves it running when stopped', async () => {
  const socketPath = join(dir, 'class', 'podman.sock');
  const stateDir = join(dir, 'class', 'state');
  assert.equal(await probeSocket(socketPath), 'absent', 'nothing answers on the fresh socket');

  const rs = new RuntimeService({ socketPath, stateDir, log: pino({ level: 'silent' }) });
  assert.equal(await rs.ensure(), true, 'the service is ours');
  const first = track(rs.pid, socketPath);
  assert.equal(sessionOf(first), first, 'the service leads its own session');
  const docker = new Docker({ socketPath });
  assert.equal(String(await docker.ping()), 'OK');
  assert.ok(Array.isArray(await docker.listContainers({ all: true })), 'the Docker API lists containers');

  rs.supervise(200);
  process.kill(first, 'SIGKILL');
  const second = await until(
    'the supervisor brings the service back',
    async () => (rs.pid !== first && (await pingSocket(socketPath)) ? rs.pid : undefined),
    20_000,
  );
  track(second, socketPath);
  assert.equal(String(await docker.ping()), 'OK');

  await rs.stop();
  await new Promise(r => setTimeout(r, 500));
  assert.ok(runsCommand(second, serviceCommand({ socketPath })), 'the service outlives its supervisor');
  assert.equal(await pingSocket(socketPath), true);
  assert.ok(Array.isArray(await docker.listContainers({ all: true })));

  // Another supervisor with the same state directory (an agent restarted) takes it over.
  const again = new RuntimeService({ socketPath, stateDir, log: pino({ level: 'silent' }) });
  assert.equal(await again.ensure(), true);
  assert.equal(again.pid, second, 'the running service is adopted, not replaced');
  await again.stop();
});

test('the agent starts one, restarts it after a crash, leaves it running when stopped or killed, and watches it again when it returns', async () => {
  const socket = join(dir, 'agent', 'podman.sock');
  assert.equal(await pingSocket(socket), false, 'nothing answers on the fresh socket');
  const fx = await startContainerFixture('runtime-node', { agentArgs: ['--docker-socket', socket] });
  fixtures.push({ fx, socket });
  const pidFile = join(fx.agentData, 'podman', 'service.pid');
  const servicePid = () => Number(readFileSync(pidFile, 'utf8'));
  assert.equal(await pingSocket(socket), true, 'the agent started the service');
  const first = track(servicePid(), socket);

  const docker = new Docker({ socketPath: socket });
  const id = await fx.run({ command: ['echo', 'via the started service'], stopGraceSeconds: 1 });
  await fx.waitFor(id, 'stopped');
  const [c] = await docker.listContainers({ all: true, filters: { label: [`io.strata.instance=${id}`] } });
  assert.ok(c, 'the container was made through the agent-started service');

  process.kill(first, 'SIGKILL');
  const second = await until(
    'the service is back',
    async () => (servicePid() !== first && (await pingSocket(socket)) ? servicePid() : undefined),
    30_000,
  );
  track(second, socket);
  const again = await fx.run({ command: ['true'] });
  await fx.waitFor(again, 'stopped');

  fx.agent.kill('SIGTERM');
  await new Promise(r => fx.agent.once('exit', r));
  assert.equal(await pingSocket(socket), true, 'the service outlives the agent');

  // Restarted, then killed with -9: the service stays; the next agent adopts it and restarts it when it dies.
  fx.restartAgent();
  await fx.waitFor(await fx.run({ command: ['true'] }), 'stopped');
  assert.equal(servicePid(), second, 'the restarted agent adopted the running service');
  fx.agent.kill('SIGKILL');
  await new Promise(r => fx.agent.once('exit', r));
  assert.equal(await pingSocket(socket), true, 'the service outlives kill -9 of the agent');
  fx.restartAgent();
  await fx.waitFor(await fx.run({ command: ['true'] }), 'stopped');
  process.kill(second, 'SIGKILL');
  const third = await until(
    'the adopted service is back',
    async () => (servicePid() !== second && (await pingSocket(socket)) ? servicePid() : undefined),
    30_000,
  );
  track(third, socket);
});

test('--no-manage-runtime leaves a silent socket alone and offers no containers', async () => {
  const quiet = join(dir, 'quiet.sock');
  const f = await startContainerFixture('runtime-off', {
    agentArgs: ['--docker-socket', quiet, '--no-manage-runtime'],
    drivers: [],
  });
  try {
    const host = (await f.admin.get(`/v1/hosts/${f.hostId}`)).body;
    assert.ok(!host.drivers.includes('container'), `drivers: ${host.drivers.join(', ')}`);
    assert.equal(await pingSocket(quiet), false);
  } finally {
    await f.close();
  }
});
