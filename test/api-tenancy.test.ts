// Tenancy through the real HTTP server: another project's resources answer 404
// exactly like missing ones, roles gate every write, quotas hold under
// concurrency and a refusal leaves nothing behind.
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { client, startTestServer, type Client, type TestServer } from './helpers.ts';

let srv: TestServer;
let admin: Client;
const as: Record<string, Client> = {};
let instA: string; // an instance of project A
let hostB: string; // a host dedicated to project B
let tokenOfDave: string;

before(async () => {
  srv = await startTestServer();
  admin = client(srv.url, srv.adminToken);
  for (const name of ['proj-a', 'proj-b']) assert.equal((await admin.post('/v1/projects', { name })).status, 201);
  const users: [string, string, string][] = [
    ['alice', 'proj-a', 'admin'],
    ['bob', 'proj-a', 'member'],
    ['carol', 'proj-a', 'reader'],
    ['dave', 'proj-b', 'admin'],
  ];
  for (const [name, project, role] of users) {
    assert.equal((await admin.post('/v1/users', { name, projects: [{ project, role }] })).status, 201);
    const t = await admin.post('/v1/tokens', { name: `${name}-t`, user: name });
    as[name] = client(srv.url, t.body.secret);
    if (name === 'dave') tokenOfDave = t.body.id;
  }
  instA = (await as.bob!.post('/v1/instances', { project: 'proj-a', kind: 'container', image: 'busybox', name: 'web' }))
    .body.id;
  const jt = await admin.post('/v1/join-tokens', { pool: 'proj-b' });
  const reg = await admin.post('/v1/agent/register', {
    joinToken: jt.body.secret,
    name: 'b-host',
    fingerprint: { capacity: { vcpus: 2, memoryMib: 2048, diskGib: 10 }, drivers: [] },
  });
  hostB = reg.body.host.id;
});
after(() => srv.close());

const missing = 'ins_00000000000000000000000000';

test("another project's resources answer 404, worded as for missing ones", async () => {
  const dave = as.dave!;
  const cases: [string, string, string, unknown?][] = [
    ['GET', `/v1/instances/${instA}`, `/v1/instances/${missing}`],
    ['POST', `/v1/instances/${instA}/stop`, `/v1/instances/${missing}/stop`],
    ['POST', `/v1/instances/${instA}/start`, `/v1/instances/${missing}/start`],
    ['DELETE', `/v1/instances/${instA}`, `/v1/instances/${missing}`],
    ['GET', '/v1/projects/proj-a', '/v1/projects/no-such'],
    ['PATCH', '/v1/projects/proj-a', '/v1/projects/no-such', { description: 'x' }],
    ['DELETE', '/v1/projects/proj-a', '/v1/projects/no-such'],
    ['GET', '/v1/projects/proj-a/members', '/v1/projects/no-such/members'],
    ['PUT', '/v1/projects/proj-a/members/dave', '/v1/projects/no-such/members/dave', { role: 'admin' }],
    ['DELETE', '/v1/projects/proj-a/members/bob', '/v1/projects/no-such/members/bob'],
    ['GET', '/v1/instances?project=proj-a', '/v1/instances?project=no-such'],
    ['GET', '/v1/events?project=proj-a', '/v1/events?project=no-such'],
  ];
  for (const [method, theirs, none, body] of cases) {
    const a = await dave.call(method, theirs, body);
    const b = await dave.call(method, none, body);
    assert.equal(a.status, 404, `${method} ${theirs}: ${JSON.stringify(a.body)}`);
    assert.equal(b.status, 404, `${method} ${none}`);
    const shape = (m: string) => m.replace(/"[^"]*"/g, '"…"');
    assert.equal(shape(a.body.error.message), shape(b.body.error.message), `${method} ${theirs} leaks nothing`);
  }
  // And nothing changed.
  assert.equal((await admin.get(`/v1/instances/${instA}`)).body.desiredState, 'running', 'not stopped or deleted');
  assert.equal((await admin.get('/v1/projects/proj-a/members')).body.items.length, 3);
});

test("a dedicated host is invisible to other projects; others' tokens and users too", async () => {
  assert.equal((await as.bob!.get(`/v1/hosts/${hostB}`)).status, 404);
  assert.ok(!(await as.bob!.get('/v1/hosts')).body.items.some((h: { id: string }) => h.id === hostB));
  assert.equal((await as.dave!.get(`/v1/hosts/${hostB}`)).status, 200);
  assert.equal((await as.bob!.get(`/v1/tokens/${tokenOfDave}`)).status, 404);
  assert.equal((await as.bob!.delete(`/v1/tokens/${tokenOfDave}`)).status, 404);
  assert.equal((await as.bob!.get('/v1/users/dave')).status, 404);
  assert.deepEqual(
    (await as.bob!.get('/v1/users')).body.items.map((u: { name: string }) => u.name),
    ['bob'],
  );
});

test('lists and the event log never show another project', async () => {
  await as.dave!.post('/v1/instances', { project: 'proj-b', kind: 'vm', image: 'img', name: 'db' });
  for (const who of ['alice', 'bob', 'carol']) {
    const insts = (await as[who]!.get('/v1/instances?limit=1000')).body.items as { project: string; name: string }[];
    assert.deepEqual(
      insts.map(i => i.name),
      ['web'],
      who,
    );
    const projects = (await as[who]!.get('/v1/projects')).body.items as { name: string }[];
    assert.deepEqual(
      projects.map(p => p.name),
      ['proj-a'],
      who,
    );
    const events = (await as[who]!.get('/v1/events?limit=1000')).body.items as {
      project: string | null;
      data: Record<string, unknown>;
    }[];
    assert.ok(events.length > 0);
    assert.ok(
      events.every(e => e.project !== null && !JSON.stringify(e).includes('proj-b') && e.data.name !== 'db'),
      who,
    );
  }
});

test('readers cannot write, members cannot administer, only cluster admins manage the cluster', async () => {
  const { alice, bob, carol } = as as Record<string, Client>;
  const shared = await admin.post('/v1/hosts', {
    name: 'shared-1',
    capacity: { vcpus: 1, memoryMib: 1024, diskGib: 1 },
  });
  assert.equal(shared.status, 201);
  const sharedHost = shared.body.id as string;
  assert.equal((await alice!.get(`/v1/hosts/${sharedHost}`)).status, 200, 'shared hosts are visible to all');
  const forbidden: [Client, string, string, unknown?][] = [
    [carol!, 'POST', '/v1/instances', { project: 'proj-a', kind: 'container', image: 'busybox' }],
    [carol!, 'POST', `/v1/instances/${instA}/stop`],
    [carol!, 'POST', `/v1/instances/${instA}/start`],
    [carol!, 'DELETE', `/v1/instances/${instA}`],
    [carol!, 'PATCH', '/v1/projects/proj-a', { description: 'x' }],
    [bob!, 'PATCH', '/v1/projects/proj-a', { description: 'x' }],
    [bob!, 'PUT', '/v1/projects/proj-a/members/carol', { role: 'admin' }],
    [bob!, 'DELETE', '/v1/projects/proj-a/members/carol'],
    [alice!, 'PATCH', '/v1/projects/proj-a', { quota: { instances: 1000 } }],
    [alice!, 'DELETE', '/v1/projects/proj-a'],
    [alice!, 'POST', '/v1/projects', { name: 'mine' }],
    [alice!, 'POST', '/v1/users', { name: 'eve' }],
    [alice!, 'POST', '/v1/hosts', { name: 'h', capacity: { vcpus: 1, memoryMib: 1, diskGib: 1 } }],
    [alice!, 'POST', '/v1/join-tokens', {}],
    [alice!, 'GET', '/v1/join-tokens'],
    [alice!, 'DELETE', `/v1/hosts/${sharedHost}`],
    [alice!, 'PATCH', `/v1/hosts/${sharedHost}`, { state: 'draining' }],
  ];
  for (const [who, method, path, body] of forbidden) {
    const res = await who.call(method, path, body);
    assert.equal(res.status, 403, `${method} ${path}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error.code, 'forbidden');
  }
  // Other users are invisible to non-admins, so deleting one is "not found".
  assert.equal((await alice!.delete('/v1/users/bob')).status, 404);
  assert.equal((await alice!.post('/v1/tokens', { name: 'x', user: 'bob' })).status, 404);
  assert.equal((await admin.get('/v1/users/bob')).status, 200);
  assert.equal((await admin.get(`/v1/instances/${instA}`)).body.desiredState, 'running', 'not stopped or deleted');
  assert.equal((await admin.get('/v1/projects/proj-a')).body.description, '');

  // What each role may do.
  assert.equal((await carol!.get(`/v1/instances/${instA}`)).status, 200);
  assert.equal((await bob!.post(`/v1/instances/${instA}/stop`)).status, 202);
  assert.equal((await alice!.patch('/v1/projects/proj-a', { description: 'team a' })).status, 200);
  assert.equal((await alice!.put('/v1/projects/proj-a/members/dave', { role: 'reader' })).status, 200);
  assert.equal((await as.dave!.get(`/v1/instances/${instA}`)).status, 200, 'membership takes effect at once');
  assert.equal((await alice!.delete('/v1/projects/proj-a/members/dave')).status, 204);
  assert.equal((await as.dave!.get(`/v1/instances/${instA}`)).status, 404, 'and its removal too');
});

test('quota refusals under concurrency: exactly the quota succeeds, nothing else is left', async () => {
  assert.equal(
    (
      await admin.post('/v1/projects', {
        name: 'quota',
        quota: { instances: 10, vcpus: 100, memoryMib: 100_000, diskGib: 100 },
      })
    ).status,
    201,
  );
  const eventsBefore = (await admin.get('/v1/events?project=quota&limit=1000')).body.items.length;
  const results = await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      admin.post('/v1/instances', { project: 'quota', kind: 'container', image: 'busybox', name: `q${i}` }),
    ),
  );
  const codes = results.map(r => r.status);
  assert.equal(codes.filter(c => c === 201).length, 10);
  assert.equal(codes.filter(c => c === 422).length, 30);
  for (const r of results.filter(x => x.status === 422)) assert.equal(r.body.error.code, 'quota_exceeded');
  const p = (await admin.get('/v1/projects/quota')).body;
  assert.deepEqual(p.usage, { instances: 10, vcpus: 10, memoryMib: 2560, diskGib: 0 });
  assert.equal((await admin.get('/v1/instances?project=quota&limit=1000')).body.items.length, 10);
  const created = (await admin.get('/v1/events?project=quota&limit=1000')).body.items.filter(
    (e: { type: string }) => e.type === 'instance.created',
  );
  assert.equal(created.length, 10, 'refused creations logged no event');
  assert.ok((await admin.get('/v1/events?project=quota&limit=1000')).body.items.length >= eventsBefore + 10);

  // Release on delete, then vCPU, memory and disk quotas, each the only one that
  // binds (the instance quota has room again).
  const one = results.find(r => r.status === 201)!.body.id as string;
  assert.equal((await admin.delete(`/v1/instances/${one}`)).status, 204);
  assert.equal((await admin.get('/v1/projects/quota')).body.usage.instances, 9);
  const over = await admin.post('/v1/instances', {
    project: 'quota',
    kind: 'vm',
    image: 'x',
    resources: { vcpus: 200, memoryMib: 512, diskGib: 1 },
  });
  assert.equal(over.status, 422);
  assert.equal(over.body.error.code, 'quota_exceeded');
  assert.deepEqual(over.body.error.details, { exceeded: ['vcpus 9+200 > 100'] });
  const mem = await admin.post('/v1/instances', {
    project: 'quota',
    kind: 'vm',
    image: 'x',
    resources: { vcpus: 1, memoryMib: 200_000, diskGib: 1 },
  });
  assert.equal(mem.status, 422);
  assert.deepEqual(mem.body.error.details, { exceeded: ['memoryMib 2304+200000 > 100000'] });
  const disk = await admin.post('/v1/instances', {
    project: 'quota',
    kind: 'vm',
    image: 'x',
    resources: { vcpus: 1, memoryMib: 512, diskGib: 101 },
  });
  assert.equal(disk.status, 422);
  assert.deepEqual(disk.body.error.details, { exceeded: ['diskGib 0+101 > 100'] });
  assert.equal((await admin.get('/v1/projects/quota')).body.usage.instances, 9, 'refusals took nothing');
});

test('a token cannot create a token that outlives it', async () => {
  const short = await admin.post('/v1/tokens', { name: 'short-lived', expiresInSeconds: 3600 });
  assert.equal(short.status, 201);
  const withShort = client(srv.url, short.body.secret);
  for (const body of [{ name: 'forever' }, { name: 'longer', expiresInSeconds: 7200 }]) {
    const res = await withShort.post('/v1/tokens', body);
    assert.equal(res.status, 403, JSON.stringify(body));
    assert.match(res.body.error.message, /cannot outlive it \(give expiresInSeconds of at most \d+\)/);
  }
  const shorter = await withShort.post('/v1/tokens', { name: 'shorter', expiresInSeconds: 600 });
  assert.equal(shorter.status, 201);
  assert.ok(Date.parse(shorter.body.expiresAt) <= Date.parse(short.body.expiresAt));
  const names = (await admin.get('/v1/tokens')).body.items.map((t: { name: string }) => t.name);
  assert.ok(!names.includes('forever') && !names.includes('longer'), 'nothing was made by the refusals');
});

test('removing members says the same of a user who does not exist and one who is not a member', async () => {
  const alice = as.alice!;
  const ghost = await alice.delete('/v1/projects/proj-a/members/no-such-user');
  const stranger = await alice.delete('/v1/projects/proj-a/members/dave');
  assert.equal(ghost.status, 404);
  assert.equal(stranger.status, 404);
  assert.equal(ghost.body.error.message.replace('no-such-user', 'X'), stranger.body.error.message.replace('dave', 'X'));
});

test("explanations neither count nor name other projects' dedicated hosts", async () => {
  // hostB is dedicated to proj-b; bob's instance in proj-a cannot learn of it.
  const explained = await as.bob!.get(`/v1/instances/${instA}/explain`);
  assert.equal(explained.status, 200);
  assert.doesNotMatch(explained.body.refusals, /dedicated/);
  assert.ok(!explained.body.candidates.some((c: { host: string }) => c.host === hostB));
  const hostsSeen = Number(/^(\d+) host/.exec(explained.body.refusals)?.[1] ?? 0);
  const visible = (await admin.get('/v1/hosts')).body.items.filter(
    (h: { pool: string | null }) => !h.pool || h.pool === 'proj-a',
  ).length;
  assert.equal(hostsSeen, visible);
});

test("a project's host cannot name another project's instance as its parent, nor learn that it exists", async () => {
  const jt = (await admin.post('/v1/join-tokens', { pool: 'proj-b' })).body.secret as string;
  const register = (name: string, parent: string) =>
    client(srv.url).post('/v1/agent/register', {
      joinToken: jt,
      name,
      fingerprint: { capacity: { vcpus: 1, memoryMib: 64, diskGib: 1 }, drivers: [], parent },
    });
  const theirs = await register('nested-1', instA);
  const none = await register('nested-2', missing);
  assert.equal(theirs.status, 404);
  assert.equal(none.status, 404);
  assert.equal(theirs.body.error.message.replace(instA, 'X'), none.body.error.message.replace(missing, 'X'));
});
