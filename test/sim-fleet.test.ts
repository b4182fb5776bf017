// `strata agent --sim 20`: twenty simulated hosts in one process against a
// real server. Each registers as its own host with the given shape, spread
// over zones and racks; instances created through the API are placed across
// them and run; a spread group lands on distinct racks.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { client, startTestServer, strataBin, tempDir, until, type Client, type TestServer } from './helpers.ts';

let srv: TestServer;
let admin: Client;
let fleet: ChildProcess;
const HOSTS = 20;

before(async () => {
  srv = await startTestServer();
  admin = client(srv.url, srv.adminToken);
  const joinToken = (await admin.post('/v1/join-tokens', {})).body.secret as string;
  fleet = spawn(
    strataBin,
    [
      'agent',
      '--sim',
      String(HOSTS),
      '--server',
      srv.url,
      '--join-token',
      joinToken,
      '--data',
      tempDir('strata-sim-'),
      '--name',
      'fake',
      '--sim-cpus',
      '8',
      '--sim-memory',
      '16384',
      '--sim-zones',
      '2',
      '--sim-racks',
      '5',
      '--region',
      'lab',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
});

after(async () => {
  const exited = new Promise(resolve => fleet.once('exit', resolve));
  fleet.kill('SIGTERM');
  await exited;
  await srv.close();
});

type Host = {
  name: string;
  state: string;
  topology: Record<string, string>;
  capacity: { vcpus: number };
  info: Record<string, unknown>;
};

test('each simulated host registers with its shape, spread over zones and racks', async () => {
  const hosts = await until('all simulated hosts ready', async () => {
    const items = (await admin.get('/v1/hosts?limit=1000')).body.items as Host[];
    const ready = items.filter(h => h.name.startsWith('fake-') && h.state === 'ready');
    return ready.length === HOSTS ? ready : undefined;
  });
  assert.deepEqual(
    hosts.map(h => h.name).sort(),
    Array.from({ length: HOSTS }, (_, i) => `fake-${String(i + 1).padStart(3, '0')}`),
  );
  for (const h of hosts) {
    assert.equal(h.capacity.vcpus, 8);
    assert.equal(h.info.simulated, true);
    assert.equal(h.topology.region, 'lab');
  }
  const racks = new Set(hosts.map(h => h.topology.rack));
  assert.equal(new Set(hosts.map(h => h.topology.zone)).size, 2);
  assert.equal(racks.size, 10);
  for (const r of racks) assert.match(r ?? '', /^z[12]-r[1-5]$/);
});

test('instances created through the API are placed across the fleet and all run', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 60; i++) {
    const kind = i % 3 === 0 ? 'vm' : 'container';
    const r = await admin.post('/v1/instances', { project: 'default', kind, image: 'busybox', name: `w${i}` });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    ids.push(r.body.id);
  }
  const all = await until('every instance running', async () => {
    const items = (await admin.get('/v1/instances?project=default&limit=1000')).body.items as {
      id: string;
      state: string;
      host: string;
    }[];
    const mine = items.filter(i => ids.includes(i.id));
    return mine.every(i => i.state === 'running') ? mine : undefined;
  });
  assert.ok(new Set(all.map(i => i.host)).size > 1, 'spread over more than one host');
});

test('an anti-affinity group at rack level puts one member per simulated rack, and no more', async () => {
  const g = await admin.post('/v1/groups', {
    project: 'default',
    name: 'one-per-rack',
    policy: 'anti-affinity',
    level: 'rack',
  });
  assert.equal(g.status, 201, JSON.stringify(g.body));
  const ids: string[] = [];
  for (let i = 0; i < 11; i++) {
    const r = await admin.post('/v1/instances', {
      project: 'default',
      kind: 'container',
      image: 'busybox',
      name: `spread-${i}`,
      groups: ['one-per-rack'],
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    ids.push(r.body.id);
  }
  const settled = await until('every member settled', async () => {
    const items = await Promise.all(ids.map(async id => (await admin.get(`/v1/instances/${id}`)).body));
    return items.every(i => i.state === 'running' || i.state === 'failed' || i.state === 'pending') &&
      items.filter(i => i.state === 'running').length === 10
      ? items
      : undefined;
  });
  const hosts = (await admin.get('/v1/hosts?limit=1000')).body.items as (Host & { id: string })[];
  const rackOf = new Map(hosts.map(h => [h.id, h.topology.rack]));
  const running = settled.filter(i => i.state === 'running');
  assert.equal(new Set(running.map(i => rackOf.get(i.host))).size, 10, 'ten members on ten racks');
  const refused = settled.find(i => i.state !== 'running');
  assert.ok(refused, 'the eleventh member is not placed');
});
