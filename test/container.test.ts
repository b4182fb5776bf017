// Containers for real: a server, a real agent process and Podman's Docker API
// with the local registry (scripts/podman.sh sets both up).
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import Docker from 'dockerode';
import { INSTANCE_LABEL } from '../src/drivers/container/driver.ts';
import {
  PODMAN_SOCKET,
  startContainerFixture,
  strataBin,
  tempDir,
  until,
  type Client,
  type ContainerFixture,
  type TestServer,
} from './helpers.ts';

const SOCKET = PODMAN_SOCKET;
const docker = new Docker({ socketPath: SOCKET });

let fx: ContainerFixture;
let srv: TestServer;
let admin: Client;
let joinToken: string;

const instance = async (id: string) => (await admin.get(`/v1/instances/${id}`)).body;
const inState = (id: string, state: string) => async () => {
  const i = await instance(id);
  return i.state === state ? i : undefined;
};
const containersOf = (id: string) =>
  docker.listContainers({ all: true, filters: { label: [`${INSTANCE_LABEL}=${id}`] } });
const run = (body: Record<string, unknown>) => fx.run(body);

before(async () => {
  fx = await startContainerFixture('ctr-node');
  ({ srv, admin, joinToken } = fx);
});

after(() => fx.close());

test('a one-shot container runs to completion and reports exit code 0', async () => {
  const id = await run({ command: ['sh', '-c', 'echo hello; exit 0'] });
  const done = await until('stopped', inState(id, 'stopped'));
  assert.equal(done.exitCode, 0);
  assert.ok(done.startedAt && done.finishedAt);
  const [c] = await containersOf(id);
  assert.ok(c, 'the container exists in the runtime');
  const logs = (await docker.getContainer(c.Id).logs({ stdout: true, stderr: true })).toString();
  assert.match(logs, /hello/);
});

test('a failing command reports its exit code and failed', async () => {
  const id = await run({ command: ['sh', '-c', 'exit 3'] });
  const done = await until('failed', inState(id, 'failed'));
  assert.equal(done.exitCode, 3);
});

test('stop, start, restart and delete drive the real container', async () => {
  // PID 1 ignores SIGTERM, so only the kill after the grace period stops it.
  const id = await run({
    command: ['sh', '-c', 'trap "" TERM; echo started; while true; do sleep 1; done'],
    stopGraceSeconds: 1,
  });
  const first = await until('running', inState(id, 'running'));
  const [c] = await containersOf(id);
  assert.equal(c?.State, 'running');
  assert.equal(first.stopGraceSeconds, 1);
  // Only once the trap is set does the process ignore SIGTERM.
  await until('the trap is set', async () =>
    (await docker.getContainer(c!.Id).logs({ stdout: true, stderr: true })).toString().includes('started')
      ? true
      : undefined,
  );

  const asked = Date.now();
  assert.equal((await admin.post(`/v1/instances/${id}/stop`)).status, 202);
  const stopped = await until('stopped', inState(id, 'stopped'));
  // A functional bound, not a speed claim: the default grace would take 10 s.
  assert.ok(Date.now() - asked < 8000, 'the 1 s grace period was used, then the kill');
  assert.equal(stopped.exitCode, 137, 'killed after the grace period');
  assert.notEqual((await containersOf(id))[0]?.State, 'running');

  assert.equal((await admin.post(`/v1/instances/${id}/start`)).status, 202);
  const again = await until('running again', inState(id, 'running'));
  assert.equal((await containersOf(id))[0]?.State, 'running');

  // Restart: the same container, stopped and started again; not a policy restart.
  assert.equal((await admin.post(`/v1/instances/${id}/restart`)).status, 202);
  const restarted = await until('restarted', async () => {
    const i = await instance(id);
    return i.state === 'running' && i.startedAt !== again.startedAt && i.restartRequestedAt === null ? i : undefined;
  });
  assert.equal(restarted.restarts, 0);
  assert.equal((await containersOf(id))[0]?.Id, c?.Id, 'the same container');
  const steps = (
    (await admin.get(`/v1/events?resource=${id}&limit=1000`)).body.items as { type: string; data: { to?: string } }[]
  )
    .filter(e => e.type === 'instance.restart-requested' || e.type === 'instance.state')
    .map(e => e.data.to ?? e.type);
  const from = steps.lastIndexOf('instance.restart-requested');
  assert.deepEqual(steps.slice(from), ['instance.restart-requested', 'stopping', 'stopped', 'starting', 'running']);
  const logs = (await docker.getContainer(c!.Id).logs({ stdout: true, stderr: true })).toString();
  assert.equal(logs.match(/started/g)?.length, 3, 'three runs of the same process');

  const del = await admin.delete(`/v1/instances/${id}`);
  assert.equal(del.status, 202);
  await until('gone', async () => ((await admin.get(`/v1/instances/${id}`)).status === 404 ? true : undefined));
  assert.equal((await containersOf(id)).length, 0, 'the container is removed');
});

test('an image that does not exist fails the instance with a reason, and the agent carries on', async () => {
  const id = await run({ image: '127.0.0.1:5000/library/no-such-image:1', command: ['true'] });
  const failed = await until('failed', inState(id, 'failed'));
  assert.match(failed.message, /no-such-image/);
  const ok = await run({ command: ['true'] });
  await until('the next one still runs', inState(ok, 'stopped'));
});

test('a command missing from the image fails the instance with a reason', async () => {
  const id = await run({ command: ['/no/such/binary'] });
  const failed = await until('failed', inState(id, 'failed'));
  assert.match(failed.message, /no\/such\/binary|not found|no such file/i);
});

test('an agent killed with -9 leaves its containers running and manages them again', async () => {
  const id = await run({ command: ['sleep', '600'] });
  await until('running', inState(id, 'running'));
  const [before] = await containersOf(id);
  fx.agent.kill('SIGKILL');
  await new Promise(r => fx.agent.once('exit', r));
  assert.equal((await containersOf(id))[0]?.State, 'running', 'the workload survives the agent');
  fx.restartAgent();
  // Still the same container, and the restarted agent acts on it.
  assert.equal((await admin.post(`/v1/instances/${id}/stop`)).status, 202);
  await until('stopped by the new agent', inState(id, 'stopped'));
  const [afterStop] = await containersOf(id);
  assert.equal(afterStop?.Id, before?.Id);
});

test('an instance deleted while its agent was away is torn down when the agent returns', async () => {
  const id = await run({ command: ['sleep', '600'] });
  await until('running', inState(id, 'running'));
  fx.agent.kill('SIGKILL');
  await new Promise(r => fx.agent.once('exit', r));
  // With the agent away the delete waits in `deleting`; the host keeps the instance.
  assert.equal((await admin.delete(`/v1/instances/${id}`)).status, 202);
  fx.restartAgent();
  await until('gone', async () => ((await admin.get(`/v1/instances/${id}`)).status === 404 ? true : undefined));
  await until('container removed', async () => ((await containersOf(id)).length === 0 ? true : undefined));
});

test("a second agent on the same runtime leaves the first one's containers alone", async () => {
  const id = await run({ command: ['sleep', '600'] });
  await until('running', inState(id, 'running'));
  const other = spawn(
    strataBin,
    [
      'agent',
      '--server',
      srv.url,
      '--data',
      tempDir('strata-ctr-other-'),
      '--name',
      'ctr-other',
      '--docker-socket',
      SOCKET,
      '--log-level',
      'warn',
      '--label',
      'side=other',
      '--join-token',
      joinToken,
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  try {
    const otherHost = await until('the second host registers', async () =>
      (await admin.get('/v1/hosts')).body.items.find(
        (h: { name: string; state: string }) => h.name === 'ctr-other' && h.state === 'ready',
      ),
    );
    // The agent runs its clean-up pass on its first assignment answer, before it
    // handles any later one: an instance of its own running shows the pass is over.
    const own = await run({ command: ['sleep', '600'], constraints: [{ key: 'side', op: '==', value: 'other' }] });
    const placed = await until('running on the second host', inState(own, 'running'));
    assert.equal(placed.host, otherHost.id);
    assert.equal((await containersOf(id))[0]?.State, 'running');
    assert.equal((await admin.delete(`/v1/instances/${own}`)).status, 202);
    await until('removed by the second agent', async () =>
      (await admin.get(`/v1/instances/${own}`)).status === 404 ? true : undefined,
    );
  } finally {
    other.kill('SIGKILL');
  }
  assert.equal((await admin.delete(`/v1/instances/${id}`)).status, 202);
});

test('limits are enforced by the runtime: a memory hog is OOM-killed and reported as exit 137', async () => {
  const id = await run({
    resources: { vcpus: 1, memoryMib: 16 },
    command: ['sh', '-c', 'x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done'],
  });
  const failed = await until('failed', inState(id, 'failed'));
  assert.equal(failed.exitCode, 137);
  assert.match(failed.message, /137/);
  const [c] = await containersOf(id);
  const info = await docker.getContainer(c!.Id).inspect();
  assert.equal(info.HostConfig.Memory, 16 * 1024 * 1024);
});

test('environment and arguments reach the process', async () => {
  const id = await run({ command: ['sh', '-c'], args: ['echo "$GREETING $0"', 'from-args'], env: { GREETING: 'hi' } });
  await until('stopped', inState(id, 'stopped'));
  const [c] = await containersOf(id);
  const logs = (await docker.getContainer(c!.Id).logs({ stdout: true, stderr: true })).toString();
  assert.match(logs, /hi from-args/);
});

test('restart policy on-failure: retried with backoff up to maxRetries, each restart an event', async () => {
  const id = await run({ command: ['sh', '-c', 'exit 1'], restartPolicy: { policy: 'on-failure', maxRetries: 2 } });
  // 1 s then 2 s of backoff: settled well within the wait below.
  const done = await until('two restarts, then failed for good', async () => {
    const i = await instance(id);
    return i.restarts === 2 && i.state === 'failed' ? i : undefined;
  });
  assert.equal(done.exitCode, 1);
  // The agent reports each exit with its restart decision: this one says none.
  assert.equal(done.message, 'exited with code 1', 'no third restart');
  const events = (await admin.get(`/v1/events?resource=${id}&limit=1000`)).body.items as {
    type: string;
    data: Record<string, unknown>;
  }[];
  const restarts = events
    .filter(e => e.type === 'instance.state' && e.data.restart !== undefined)
    .map(e => e.data.restart);
  assert.deepEqual(restarts, [1, 2]);
  assert.ok(events.some(e => /restarting in 1 s/.test(String(e.data.message))));
  assert.ok(events.some(e => /restarting in 2 s/.test(String(e.data.message))));
});

test('restart policy always: a clean exit is restarted too; never: it is not', async () => {
  const always = await run({ command: ['true'], restartPolicy: { policy: 'always' } });
  await until('restarted twice', async () => ((await instance(always)).restarts >= 2 ? true : undefined), 30_000);
  assert.equal((await admin.delete(`/v1/instances/${always}`)).status, 202);
  const never = await run({ command: ['sh', '-c', 'exit 1'] });
  // The exit is reported with the restart decision: none.
  const after = await until('failed', inState(never, 'failed'));
  assert.equal(after.message, 'exited with code 1');
  assert.equal(after.restarts, 0);
});

test('pause freezes the container in place and resume thaws it', async () => {
  const id = await run({ command: ['sh', '-c', 'while true; do sleep 1; done'], stopGraceSeconds: 1 });
  await until('running', inState(id, 'running'));
  assert.equal((await admin.post(`/v1/instances/${id}/resume`)).status, 409, 'not paused yet');
  assert.equal((await admin.post(`/v1/instances/${id}/pause`)).status, 202);
  await until('paused', inState(id, 'paused'));
  const [c] = await containersOf(id);
  assert.equal((await docker.getContainer(c!.Id).inspect()).State.Paused, true);
  assert.equal((await admin.post(`/v1/instances/${id}/pause`)).status, 409, 'already paused');
  assert.equal((await admin.post(`/v1/instances/${id}/resume`)).status, 202);
  await until('running again', inState(id, 'running'));
  assert.equal((await docker.getContainer(c!.Id).inspect()).State.Paused, false);
  // A paused instance can be stopped: it is thawed to take its signal.
  assert.equal((await admin.post(`/v1/instances/${id}/pause`)).status, 202);
  await until('paused', inState(id, 'paused'));
  assert.equal((await admin.post(`/v1/instances/${id}/stop`)).status, 202);
  await until('stopped', inState(id, 'stopped'));
});

test('an instance deleted by force is forgotten at once, and its agent removes the container', async () => {
  const id = await run({ command: ['sleep', '600'] });
  await until('running', inState(id, 'running'));
  assert.equal((await admin.delete(`/v1/instances/${id}?force=true`)).status, 204);
  assert.equal((await admin.get(`/v1/instances/${id}`)).status, 404);
  await until('container removed', async () => ((await containersOf(id)).length === 0 ? true : undefined));
});
