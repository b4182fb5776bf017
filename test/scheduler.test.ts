// The scheduler through the API: placement groups, concurrency and nesting.
// Hosts register through the agent protocol (fingerprints, heartbeats), so
// placement sees them exactly as it sees real agents' hosts.
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { client, startTestServer, until, type Client, type TestServer } from './helpers.ts';

let srv: TestServer;
let admin: Client;
let joinToken: string;

before(async () => {
  srv = await startTestServer({ heartbeatSeconds: 600 });
  admin = client(srv.url, srv.adminToken);
  joinToken = (await admin.post('/v1/join-tokens', {})).body.secret;
});
after(() => srv.close());

async function register(name: string, fp: Record<string, unknown> = {}): Promise<string> {
  const res = await admin.post('/v1/agent/register', {
    joinToken,
    name,
    fingerprint: { capacity: { vcpus: 8, memoryMib: 8192, diskGib: 100 }, drivers: ['container', 'vm'], ...fp },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.host.id as string;
}

const settled = (id: string) =>
  until(`${id} placed or refused`, async () => {
    const i = (await admin.get(`/v1/instances/${id}`)).body;
    return i.state === 'pending' ? undefined : i;
  });

test('fifty concurrent creates in a hard physical-host anti-affinity group on fifty hosts: all apart; the fifty-first refused', async () => {
  assert.equal((await admin.post('/v1/projects', { name: 'fifty' })).status, 201);
  const hosts = new Set<string>();
  for (let i = 0; i < 50; i++) hosts.add(await register(`f${i}`, { labels: { pool: 'fifty' } }));
  const g = await admin.post('/v1/groups', {
    project: 'fifty',
    name: 'apart',
    policy: 'anti-affinity',
    level: 'physical-host',
  });
  assert.equal(g.status, 201, JSON.stringify(g.body));
  const body = (i: number) => ({
    project: 'fifty',
    kind: 'container',
    image: 'busybox',
    name: `m${i}`,
    groups: ['apart'],
    constraints: [{ key: 'pool', op: '==', value: 'fifty' }],
    resources: { memoryMib: 64 },
  });
  const made = await Promise.all(Array.from({ length: 50 }, (_, i) => admin.post('/v1/instances', body(i))));
  assert.ok(made.every(r => r.status === 201));
  const placed = await Promise.all(made.map(r => settled(r.body.id)));
  assert.ok(
    placed.every(i => i.state === 'scheduled'),
    placed.map(i => `${i.name}: ${i.state} ${i.message}`).join('\n'),
  );
  assert.equal(new Set(placed.map(i => i.host)).size, 50, 'every member on its own host');
  assert.ok(placed.every(i => hosts.has(i.host)));

  const extra = await admin.post('/v1/instances', { ...body(50), waitForCapacity: false });
  const refused = await settled(extra.body.id);
  assert.equal(refused.state, 'failed');
  assert.match(refused.message, /unplaced: \d+ hosts: 50 anti-affinity physical-host/);
  assert.equal((await admin.get(`/v1/groups/${g.body.id}`)).body.members, 51);
});

test('physical-host anti-affinity sees through nested VM hosts', async () => {
  assert.equal((await admin.post('/v1/projects', { name: 'nest' })).status, 201);
  const p1 = await register('server-1', { labels: { tier: 'metal-1' }, topology: { zone: 'a', rack: 'r1' } });
  await register('server-2', { labels: { tier: 'metal-2' }, topology: { zone: 'a', rack: 'r2' } });
  // Three VM hosts: two run in VMs on server-1, one on server-2.
  const vmOn = async (tier: string, name: string) => {
    const r = await admin.post('/v1/instances', {
      project: 'nest',
      kind: 'vm',
      image: 'busybox',
      name,
      constraints: [{ key: 'tier', op: '==', value: tier }],
      resources: { vcpus: 2, memoryMib: 2048 },
    });
    const i = await settled(r.body.id);
    assert.equal(i.state, 'scheduled');
    return i;
  };
  const vmA = await vmOn('metal-1', 'vmhost-a');
  const vmB = await vmOn('metal-1', 'vmhost-b');
  const vmC = await vmOn('metal-2', 'vmhost-c');
  assert.equal(vmA.host, p1);
  for (const [name, parent] of [
    ['nested-a', vmA.id],
    ['nested-b', vmB.id],
    ['nested-c', vmC.id],
  ] as const) {
    await register(name, { parent, labels: { nested: 'yes' }, capacity: { vcpus: 2, memoryMib: 2048, diskGib: 10 } });
  }
  const hosts = (await admin.get('/v1/hosts?limit=1000')).body.items as {
    id: string;
    name: string;
    kind: string;
    parent: string | null;
  }[];
  assert.equal(hosts.find(h => h.name === 'nested-a')?.kind, 'virtual');

  assert.equal(
    (await admin.post('/v1/groups', { project: 'nest', name: 'ha', policy: 'anti-affinity', level: 'physical-host' }))
      .status,
    201,
  );
  const place = async (name: string) => {
    const r = await admin.post('/v1/instances', {
      project: 'nest',
      kind: 'container',
      image: 'busybox',
      name,
      groups: ['ha'],
      constraints: [{ key: 'nested', op: '==', value: 'yes' }],
      resources: { memoryMib: 64 },
      waitForCapacity: false,
    });
    return settled(r.body.id);
  };
  const one = await place('ha-1');
  const two = await place('ha-2');
  const serverOf = (hostId: string) => {
    const name = hosts.find(h => h.id === hostId)?.name;
    return name === 'nested-c' ? 'server-2' : 'server-1';
  };
  assert.equal(one.state, 'scheduled');
  assert.equal(two.state, 'scheduled');
  assert.notEqual(serverOf(one.host), serverOf(two.host), 'two VMs on one server are one physical host');
  const three = await place('ha-3');
  assert.equal(three.state, 'failed');
  assert.match(three.message, /anti-affinity physical-host/);
});

test('groups: affinity keeps members together; bad group input changes nothing', async () => {
  assert.equal((await admin.post('/v1/projects', { name: 'together' })).status, 201);
  for (let i = 0; i < 3; i++) await register(`t${i}`, { labels: { team: 'together' }, topology: { zone: `z${i}` } });
  assert.equal(
    (await admin.post('/v1/groups', { project: 'together', name: 'pair', policy: 'affinity', level: 'zone' })).status,
    201,
  );
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await admin.post('/v1/instances', {
      project: 'together',
      kind: 'container',
      image: 'busybox',
      groups: ['pair'],
      constraints: [{ key: 'team', op: '==', value: 'together' }],
      resources: { memoryMib: 64 },
    });
    ids.push(r.body.id);
    await settled(r.body.id);
  }
  const placed = await Promise.all(ids.map(id => admin.get(`/v1/instances/${id}`).then(r => r.body)));
  assert.equal(new Set(placed.map(i => i.host)).size, 1, 'all in one zone, here one host');

  const before = (await admin.get('/v1/instances?limit=1000')).body.items.length;
  const unknown = await admin.post('/v1/instances', {
    project: 'together',
    kind: 'container',
    image: 'busybox',
    groups: ['nope'],
  });
  assert.equal(unknown.status, 422);
  assert.match(unknown.body.error.message, /no placement group "nope"/);
  assert.equal((await admin.get('/v1/instances?limit=1000')).body.items.length, before);
  const dup = await admin.post('/v1/groups', {
    project: 'together',
    name: 'pair',
    policy: 'anti-affinity',
    level: 'zone',
  });
  assert.equal(dup.status, 409);
  const badLevel = await admin.post('/v1/groups', {
    project: 'together',
    name: 'x',
    policy: 'affinity',
    level: 'planet',
  });
  assert.equal(badLevel.status, 400);
  const g = (await admin.get('/v1/groups?project=together')).body.items[0];
  assert.equal((await admin.delete(`/v1/groups/${g.id}`)).status, 409, 'a group with members stays');
});

test('the CLI: group create, run --group, instance explain', async () => {
  const { cliEnv, runCli, tempDir } = await import('./helpers.ts');
  const { join } = await import('node:path');
  const home = tempDir('strata-sched-cli-');
  const env = cliEnv(join(home, 'config.yaml'), home, {
    STRATA_URL: srv.url,
    STRATA_TOKEN: srv.adminToken,
    STRATA_PROJECT: 'together',
  });
  const made = await runCli(
    ['group', 'create', 'spread-web', '--policy', 'spread', '--level', 'zone', '--max-skew', '1'],
    env,
  );
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout, /group spread-web created .*: hard spread at the zone level/);
  const run = await runCli(['run', '--group', 'spread-web', '--name', 'web-1', '-c', 'team==together', 'busybox'], env);
  assert.equal(run.code, 0, run.stderr);
  const list = await runCli(['group', 'list'], env);
  assert.match(list.stdout, /spread-web .* hard spread \(max skew 1\)\s+zone\s+1/);
  const explained = await runCli(['instance', 'explain', 'web-1'], env);
  assert.equal(explained.code, 0, explained.stderr);
  assert.match(explained.stdout, /^Refused: \d+ hosts: /m);
  assert.match(explained.stdout, /RANK\s+HOST\s+SCORE/);
  assert.match(explained.stdout, /1\s+t\d\s+[-\d.]+/);
});

test('draining a host stops placements on it and hands its instances over, one event each', async () => {
  assert.equal((await admin.post('/v1/projects', { name: 'drain' })).status, 201);
  const a = await register('drain-a', { labels: { team: 'drain' } });
  const b = await register('drain-b', { labels: { team: 'drain' } });
  const put = (name: string) =>
    admin.post('/v1/instances', {
      project: 'drain',
      kind: 'container',
      image: 'busybox',
      name,
      constraints: [{ key: 'team', op: '==', value: 'drain' }],
      resources: { memoryMib: 64 },
    });
  const first = await settled((await put('d1')).body.id);
  const busy = first.host as string;
  const idle = busy === a ? b : a;
  assert.equal((await admin.patch(`/v1/hosts/${busy}`, { state: 'draining' })).status, 200);
  const events = (await admin.get(`/v1/events?resource=${first.id}&limit=1000`)).body.items as {
    type: string;
    data: { reason?: string };
  }[];
  assert.ok(events.some(e => e.type === 'instance.evict-requested' && /is draining/.test(e.data.reason ?? '')));
  for (let i = 0; i < 3; i++)
    assert.equal((await settled((await put(`d${i + 2}`)).body.id)).host, idle, 'nothing new on the draining host');
  const explained = (await admin.get(`/v1/instances/${first.id}/explain`)).body;
  assert.match(explained.refusals, /1 draining/);
});

test("placement counts a VM's QEMU overhead on its host, and only a VM's", async () => {
  assert.equal((await admin.post('/v1/projects', { name: 'overhead' })).status, 201);
  await register('small-1', { capacity: { vcpus: 8, memoryMib: 1024, diskGib: 100 }, labels: { pool: 'small' } });
  const create = async (kind: string, memoryMib: number) => {
    const r = await admin.post('/v1/instances', {
      project: 'overhead',
      kind,
      image: 'busybox',
      resources: { memoryMib, diskGib: 1 },
      constraints: [{ key: 'pool', op: '==', value: 'small' }],
      waitForCapacity: false,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return settled(r.body.id);
  };
  // 1024 MiB: a VM of 900 needs 900 + 192 for its QEMU.
  const tooBig = await create('vm', 900);
  assert.equal(tooBig.state, 'failed');
  assert.match(tooBig.message, /1 lack memory/);
  // 832 + 192 fills the host exactly...
  assert.equal((await create('vm', 832)).state, 'scheduled');
  // ...and what it holds, overhead included, is counted for the next one.
  const none = await create('container', 4);
  assert.equal(none.state, 'failed');
  assert.match(none.message, /1 lack memory/);
});
