// The agent's reconcile loop on the simulated driver, against a real server in
// this process: placement, start, exits and restart policies, stop, delete,
// pause, a user's restart, re-attach after an agent restart, and an instance
// whose handling fails while the others carry on.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import type { InstanceSpec, Observed } from '../drivers/driver.ts';
import { SimDriver, SimMachineDriver, SimRuntime } from '../drivers/sim/driver.ts';
import { startServer, type RunningServer } from '../server/server.ts';
import { Agent } from './agent.ts';
import { simFingerprint } from './sim-fleet.ts';

const log = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'strata-agent-unit-'));
let server: RunningServer;
let adminToken: string;
let joinToken: string;

async function call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(server.url + path, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

type Inst = {
  id: string;
  state: string;
  message: string;
  exitCode: number | null;
  restarts: number;
  host: string;
  observed: { health?: { status: string; output: string } | null };
};

/** Polls until `ok` holds for the instance (the server's view); never a fixed sleep. */
async function until(id: string, ok: (i: Inst) => boolean, what: string): Promise<Inst> {
  const end = Date.now() + 10_000;
  let last: Inst | undefined;
  while (Date.now() < end) {
    last = await call<Inst>('GET', `/v1/instances/${id}`).catch(() => undefined);
    if (last && ok(last)) return last;
    await new Promise(r => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}; last seen ${JSON.stringify(last)}`);
}

const state = (s: string) => (i: Inst) => i.state === s;

async function create(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const made = await call<Inst>('POST', '/v1/instances', {
    project: 'default',
    kind: 'container',
    image: 'busybox',
    name,
    ...extra,
  });
  return made.id;
}

/** Starts and removals as the driver saw them, in order. */
const calls: string[] = [];
/** Looks at each instance through the driver. */
const inspects = new Map<string, number>();

/** A sim driver whose inspect of one instance throws, as a broken runtime would; its removals are slow. */
class BrokenFor extends SimDriver {
  private readonly broken: string[];
  constructor(runtime: SimRuntime, broken: string[]) {
    super({ kind: 'container', runtime });
    this.broken = broken;
  }
  override inspect(id: string): Promise<Observed> {
    inspects.set(id, (inspects.get(id) ?? 0) + 1);
    if (this.broken.includes(id)) return Promise.reject(new Error('runtime answered garbage'));
    return super.inspect(id);
  }
  override async start(spec: InstanceSpec, progress?: (message: string) => void): Promise<void> {
    calls.push(`start ${spec.id}`);
    return super.start(spec, progress);
  }
  override async destroy(id: string): Promise<void> {
    calls.push(`destroy ${id}`);
    // A runtime that takes its time to remove a workload.
    await new Promise(r => setTimeout(r, 100));
    await super.destroy(id);
    calls.push(`destroyed ${id}`);
  }
}

const runtime = new SimRuntime();
const broken: string[] = [];
const agentData = join(dir, 'agent');

function newAgent(): Agent {
  return new Agent({
    server: server.url,
    joinToken,
    name: 'sim-unit',
    dataDir: agentData,
    topology: {},
    drivers: [new BrokenFor(runtime, broken), new SimMachineDriver(runtime)],
    fingerprint: simFingerprint({ vcpus: 64, memoryMib: 262_144, diskGib: 1000, zone: 'z1', rack: 'z1-r1' }),
    log,
    waitSeconds: 5,
  });
}

let agent: Agent;

before(async () => {
  server = await startServer({ dataDir: join(dir, 'server'), host: '127.0.0.1', port: 0, logger: log });
  const { readFileSync } = await import('node:fs');
  adminToken = readFileSync(server.adminTokenFile, 'utf8').trim();
  joinToken = (await call<{ secret: string }>('POST', '/v1/join-tokens', {})).secret;
  agent = newAgent();
  await agent.start();
});

after(async () => {
  await agent.stop();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a placed instance is started and reported running; stop and start act on its workload', async () => {
  const id = await create('web', { env: { SIM_LOG: 'hello' } });
  const running = await until(id, state('running'), 'running');
  assert.equal(running.host, agent.hostId);
  assert.equal(runtime.workloads.get(id)?.state, 'running');
  await call('POST', `/v1/instances/${id}/stop`);
  const stopped = await until(id, state('stopped'), 'stopped');
  assert.equal(stopped.exitCode, 0);
  assert.equal(runtime.workloads.get(id)?.state, 'stopped');
  await call('POST', `/v1/instances/${id}/start`);
  await until(id, state('running'), 'running again');
});

// Both wait on real seconds (a restart's backoff, a check's interval): side by side.
describe('timed behaviour', { concurrency: true }, () => {
  test('an exit is reported with its code, and the restart policy restarts it with backoff until it gives up', async () => {
    const id = await create('crashy', {
      env: { SIM_EXIT_AFTER_MS: '20', SIM_EXIT_CODE: '3' },
      restartPolicy: { policy: 'on-failure', maxRetries: 1 },
    });
    const last = await until(id, i => i.state === 'failed' && i.restarts === 1, 'the exit after the one restart');
    assert.equal(last.exitCode, 3);
    // The first exit said it would restart (a reconcile racing the exit may
    // have reported the bare exit too); the restart is an event of its own.
    const events = await call<{ items: { data: { to?: string; message?: string; restart?: number } }[] }>(
      'GET',
      `/v1/events?resource=${id}&limit=100`,
    );
    const said = events.items.map(e => e.data.message);
    assert.ok(said.includes('exited with code 3; restarting in 1 s (restart 1)'), JSON.stringify(said));
    assert.ok(events.items.some(e => e.data.to === 'starting' && e.data.restart === 1));
    assert.equal(last.message, 'exited with code 3');
  });

  test('health checks run through the driver: exec answers make an instance healthy or unhealthy', async () => {
    const check = (command: string[]) => ({ type: 'exec', command, intervalSeconds: 1, retries: 1 });
    const ok = await create('fine', { healthCheck: check(['true']) });
    const sick = await create('sick', { healthCheck: check(['exit', '2']) });
    await until(ok, i => i.observed.health?.status === 'healthy', 'healthy');
    const bad = await until(sick, i => i.observed.health?.status === 'unhealthy', 'unhealthy');
    assert.equal(bad.observed.health?.output, 'exit 2:');
  });
});

test('an instance that exits cleanly under policy never stays stopped', async () => {
  const id = await create('done', { env: { SIM_EXIT_AFTER_MS: '10' }, restartPolicy: { policy: 'never' } });
  const stopped = await until(id, state('stopped'), 'stopped by itself');
  assert.equal(stopped.exitCode, 0);
  assert.equal(stopped.restarts, 0);
});

test('pause, resume and a user restart go through the driver', async () => {
  const id = await create('vm1', { kind: 'vm', env: { SIM_LOG: 'booted' } });
  await until(id, state('running'), 'running');
  await call('POST', `/v1/instances/${id}/pause`);
  await until(id, state('paused'), 'paused');
  assert.equal(runtime.workloads.get(id)?.state, 'paused');
  await call('POST', `/v1/instances/${id}/resume`);
  await until(id, state('running'), 'resumed');
  await call('POST', `/v1/instances/${id}/restart`);
  // A machine reboots in place: its log shows a second boot.
  const rebooted = () => runtime.workloads.get(id)?.log.length === 2;
  await until(id, i => i.state === 'running' && rebooted(), 'rebooted');
});

test('a delete removes the workload and the instance', async () => {
  const id = await create('gone');
  await until(id, state('running'), 'running');
  await call('DELETE', `/v1/instances/${id}`);
  const end = Date.now() + 10_000;
  while (
    (await fetch(`${server.url}/v1/instances/${id}`, { headers: { authorization: `Bearer ${adminToken}` } })).status !==
    404
  ) {
    assert.ok(Date.now() < end, 'instance still there');
    await new Promise(r => setTimeout(r, 10));
  }
  assert.equal(runtime.workloads.has(id), false);
});

test('a start that fails, or an instance whose runtime misbehaves, fails alone: the agent carries on', async () => {
  const bad = await create('bad', { env: { SIM_START_FAIL: 'image not found: busybox:nope' } });
  const failed = await until(bad, state('failed'), 'failed start');
  assert.equal(failed.message, 'image not found: busybox:nope');
  const weird = await create('weird');
  broken.push(weird);
  // Its reconcile throws every time; the instance never starts...
  const good = await create('good');
  await until(good, state('running'), 'a healthy neighbour running');
  assert.equal(runtime.workloads.has(weird), false);
  // ...until the runtime answers again, and the next answer starts it (its last look failed: it is handed its spec).
  broken.length = 0;
  await call('POST', `/v1/instances/${good}/stop`);
  await until(weird, state('running'), 'running once the runtime answers');
});

test('an answer has only the instances whose spec changed looked at; an unchanged answer, every one', async () => {
  const steady = await create('steady-neighbour');
  await until(steady, state('running'), 'running');
  const before = inspects.get(steady) ?? 0;
  // Three more instances go through their states: answer after answer for this host.
  const busy = await Promise.all(['busy-1', 'busy-2', 'busy-3'].map(n => create(n)));
  for (const id of busy) await until(id, state('running'), `${id} running`);
  // (One look at everything may fall in, a wait after the last.)
  assert.ok((inspects.get(steady) ?? 0) - before <= 1, `looked at ${(inspects.get(steady) ?? 0) - before} times`);
  // The wait runs out (5 s here): the unchanged answer has it looked at again.
  const seen = inspects.get(steady) ?? 0;
  const end = Date.now() + 15_000;
  while ((inspects.get(steady) ?? 0) === seen) {
    assert.ok(Date.now() < end, 'never looked at again');
    await new Promise(r => setTimeout(r, 20));
  }
  for (const id of [steady, ...busy]) await call('DELETE', `/v1/instances/${id}`);
});

test('a restarted agent finds its workloads again without disturbing them, and manages them', async () => {
  const id = await create('steady', { env: { SIM_LOG: 'started once' } });
  await until(id, state('running'), 'running');
  const run = runtime.workloads.get(id)?.run;
  const hostId = agent.hostId;
  await agent.stop();
  // Work placed while the agent was away waits for it.
  const orphan = await create('waiting');
  await until(orphan, state('scheduled'), 'placed on the stopped agent');
  agent = newAgent();
  await agent.start();
  assert.equal(agent.hostId, hostId);
  await until(orphan, state('running'), 'the pending one started by the new agent');
  assert.equal(runtime.workloads.get(id)?.run, run, 'the running workload was not restarted');
  assert.equal(runtime.workloads.get(id)?.log.length, 1);
  await call('POST', `/v1/instances/${id}/stop`);
  await until(id, state('stopped'), 'stopped through the new agent');
});

test('an instance deleted while its agent was away has its workload removed when the agent comes back', async () => {
  const id = await create('leftover');
  await until(id, state('running'), 'running');
  await agent.stop();
  await call('DELETE', `/v1/instances/${id}`);
  agent = newAgent();
  await agent.start();
  const end = Date.now() + 10_000;
  while (runtime.workloads.has(id)) {
    assert.ok(Date.now() < end, 'workload still there');
    await new Promise(r => setTimeout(r, 10));
  }
});

test('back after an outage, the agent removes what was deleted meanwhile before it starts anything', async () => {
  const id = await create('replaced');
  await until(id, state('running'), 'running');
  await agent.stop();
  await call('DELETE', `/v1/instances/${id}`);
  const next = await create('successor');
  await until(next, state('scheduled'), 'placed on the stopped agent');
  calls.length = 0;
  agent = newAgent();
  await agent.start();
  await until(next, state('running'), 'the new one started');
  assert.ok(!runtime.workloads.has(id), 'the deleted one is gone');
  const removed = calls.indexOf(`destroyed ${id}`);
  const started = calls.indexOf(`start ${next}`);
  assert.ok(removed >= 0 && started > removed, `removed, then started: ${calls.join(', ')}`);
});
