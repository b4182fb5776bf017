// The scheduler with real agents on one machine: each agent with its own
// topology labels, one registered as a virtual host nested in an instance on
// another's host. A physical-host anti-affinity group sees through the nesting,
// and the containers it places really run.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import Docker from 'dockerode';
import {
  client,
  killProcessesMentioning,
  PODMAN_SOCKET,
  removeDir,
  startTestServer,
  strataBin,
  tempDir,
  TEST_IMAGE,
  until,
  type Client,
  type TestServer,
} from './helpers.ts';

let srv: TestServer;
let admin: Client;
let joinToken: string;
const agents: ChildProcess[] = [];
const dirs: string[] = [];
const hostIds: string[] = [];

function agent(name: string, ...args: string[]): ChildProcess {
  const data = tempDir(`strata-sched-${name}-`);
  dirs.push(data);
  const child = spawn(
    strataBin,
    [
      'agent',
      '--server',
      srv.url,
      '--data',
      data,
      '--name',
      name,
      '--docker-socket',
      PODMAN_SOCKET,
      '--log-level',
      'warn',
      '--join-token',
      joinToken,
      '--label',
      'role=worker',
      ...args,
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  agents.push(child);
  return child;
}

const hostNamed = (name: string) =>
  until(`host ${name} ready`, async () => {
    const h = (
      (await admin.get('/v1/hosts?limit=1000')).body.items as {
        id: string;
        name: string;
        state: string;
        drivers: string[];
      }[]
    ).find(x => x.name === name);
    return h && h.state === 'ready' && h.drivers.includes('container') ? h : undefined;
  });

const settled = (id: string) =>
  until(`${id} settled`, async () => {
    const i = (await admin.get(`/v1/instances/${id}`)).body;
    return ['running', 'failed'].includes(i.state) ? i : undefined;
  });

before(async () => {
  srv = await startTestServer();
  admin = client(srv.url, srv.adminToken);
  joinToken = (await admin.post('/v1/join-tokens', {})).body.secret;
});

after(async () => {
  for (const a of agents) a.kill('SIGKILL');
  const docker = new Docker({ socketPath: PODMAN_SOCKET });
  for (const id of hostIds) {
    for (const c of await docker.listContainers({ all: true, filters: { label: [`io.strata.host=${id}`] } }))
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
  }
  for (const d of dirs) {
    killProcessesMentioning(d);
    removeDir(d);
  }
  await srv.close();
});

test('real agents: physical-host anti-affinity holds through a nested host, and the placed containers run', async () => {
  agent('phys-1', '--zone', 'a', '--rack', 'r1');
  agent('phys-2', '--zone', 'a', '--rack', 'r2');
  const p1 = await hostNamed('phys-1');
  const p2 = await hostNamed('phys-2');
  hostIds.push(p1.id, p2.id);
  // The nested host's parent: an instance on phys-1 (here a container stands in for the VM).
  const parent = await admin.post('/v1/instances', {
    project: 'default',
    kind: 'container',
    image: TEST_IMAGE,
    name: 'vm-host',
    command: ['sleep', '600'],
    constraints: [{ key: 'topology.rack', op: '==', value: 'r1' }],
    resources: { memoryMib: 64 },
  });
  const parentRunning = await settled(parent.body.id);
  assert.equal(parentRunning.host, p1.id);
  agent('nested-1', '--kind', 'virtual', '--parent', parent.body.id);
  const n1 = await hostNamed('nested-1');
  hostIds.push(n1.id);
  assert.equal((await admin.get(`/v1/hosts/${n1.id}`)).body.kind, 'virtual');

  assert.equal(
    (
      await admin.post('/v1/groups', {
        project: 'default',
        name: 'ha',
        policy: 'anti-affinity',
        level: 'physical-host',
      })
    ).status,
    201,
  );
  const member = async (name: string) => {
    const r = await admin.post('/v1/instances', {
      project: 'default',
      kind: 'container',
      image: TEST_IMAGE,
      name,
      groups: ['ha'],
      command: ['sleep', '600'],
      constraints: [{ key: 'role', op: '==', value: 'worker' }],
      resources: { memoryMib: 64 },
      stopGraceSeconds: 1,
      waitForCapacity: false,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return settled(r.body.id);
  };
  const one = await member('ha-1');
  const two = await member('ha-2');
  const three = await member('ha-3');
  const physical = (hostId: string) => (hostId === n1.id || hostId === p1.id ? 'phys-1' : 'phys-2');
  const placed = [one, two, three].filter(i => i.state === 'running');
  assert.equal(placed.length, 2, [one, two, three].map(i => `${i.name}: ${i.state} ${i.message}`).join('\n'));
  assert.notEqual(physical(placed[0].host), physical(placed[1].host), 'one per physical server');
  const refused = [one, two, three].find(i => i.state === 'failed')!;
  assert.match(refused.message, /anti-affinity physical-host/);
});
