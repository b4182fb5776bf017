// The real agent process against a real server: registration with a join
// token, fingerprint, heartbeats, and a kill -9 restart that keeps its identity.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { client, startTestServer, strataBin, tempDir, until, type Client, type TestServer } from './helpers.ts';

let srv: TestServer;
let admin: Client;
let joinToken: string;
const agentData = tempDir('strata-agent-');

before(async () => {
  srv = await startTestServer({ heartbeatSeconds: 1 });
  admin = client(srv.url, srv.adminToken);
  const jt = await admin.post('/v1/join-tokens', { description: 'agent test' });
  assert.equal(jt.status, 201);
  joinToken = jt.body.secret;
});
after(() => srv.close());

function runAgent(args: string[] = []): ChildProcess {
  return spawn(
    strataBin,
    [
      'agent',
      '--server',
      srv.url,
      '--data',
      agentData,
      '--name',
      'node-1',
      '--zone',
      'z1',
      '--rack',
      'r7',
      '--label',
      'disk=ssd',
      '--log-level',
      'warn',
      ...args,
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
}

const hostsNamed = async (name: string) =>
  (await admin.get('/v1/hosts?limit=1000')).body.items.filter((h: { name: string }) => h.name === name);

test('an agent registers its host with a fingerprint and keeps it ready', async () => {
  const agent = runAgent(['--join-token', joinToken]);
  try {
    const host = await until('host registered', async () => (await hostsNamed('node-1'))[0]);
    assert.equal(host.state, 'ready');
    assert.equal(host.kind, 'physical');
    assert.equal(host.capacity.vcpus, availableParallelism());
    assert.ok(host.capacity.memoryMib > 0 && host.allocatable.memoryMib <= host.capacity.memoryMib);
    assert.deepEqual(host.topology, { region: '', zone: 'z1', rack: 'r7' });
    assert.deepEqual(host.labels, { disk: 'ssd' });
    assert.equal(typeof host.info.kernel, 'string');
    // Heartbeats keep arriving.
    const first = host.lastHeartbeatAt;
    await until('a later heartbeat', async () => {
      const h = (await admin.get(`/v1/hosts/${host.id}`)).body;
      return h.lastHeartbeatAt > first ? h : undefined;
    });
  } finally {
    agent.kill('SIGKILL');
  }
});

test('an agent killed with -9 comes back as the same host, without its join token', async () => {
  const [before] = await hostsNamed('node-1');
  assert.ok(before, 'host from the previous test');
  // No --join-token: the saved identity must be enough.
  const agent = runAgent();
  try {
    await until('heartbeat after restart', async () => {
      const h = (await admin.get(`/v1/hosts/${before.id}`)).body;
      return h.lastHeartbeatAt > before.lastHeartbeatAt && h.state === 'ready' ? h : undefined;
    });
    assert.equal((await hostsNamed('node-1')).length, 1, 'no second host registered');
  } finally {
    agent.kill('SIGKILL');
  }
});

test('an agent without identity or join token refuses to start with a clear message', async () => {
  const child = spawn(
    strataBin,
    ['agent', '--server', srv.url, '--data', join(agentData, 'empty'), '--name', 'node-2'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>(r => child.once('exit', r));
  assert.notEqual(code, 0);
  assert.match(err, /join-token/);
  assert.equal((await hostsNamed('node-2')).length, 0);
});

test('a bad join token is refused and registers nothing', async () => {
  const child = spawn(
    strataBin,
    ['agent', '--server', srv.url, '--data', join(agentData, 'bad'), '--name', 'node-3', '--join-token', 'sjt_wrong'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>(r => child.once('exit', r));
  assert.notEqual(code, 0);
  assert.match(err, /invalid or expired join token/);
  assert.equal((await hostsNamed('node-3')).length, 0);
});

test('an agent whose host was removed registers again with its join token', async () => {
  const agent = runAgent(['--join-token', joinToken]);
  try {
    const first = await until('host ready', async () =>
      (await hostsNamed('node-1')).find((h: { state: string }) => h.state === 'ready'),
    );
    assert.equal((await admin.delete(`/v1/hosts/${first.id}`)).status, 204);
    const again = await until('registered again', async () => (await hostsNamed('node-1'))[0]);
    assert.notEqual(again.id, first.id);
    assert.equal(again.state, 'ready');
  } finally {
    agent.kill('SIGKILL');
  }
});
