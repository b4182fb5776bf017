// Secrets: sealed at rest, never returned by the API nor in events, resolved
// for the agent of the host that runs the instance, and no other.
import { strict as assert } from 'node:assert';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { client, startTestServer, until, type Client, type TestServer } from './helpers.ts';

let srv: TestServer;
let admin: Client;
const VALUE = 'hunter2-c0rrect-h0rse';

before(async () => {
  srv = await startTestServer({ heartbeatSeconds: 600 });
  admin = client(srv.url, srv.adminToken);
});
after(() => srv.close());

async function agent(name: string, pool?: string): Promise<{ api: Client; hostId: string }> {
  const jt = (await admin.post('/v1/join-tokens', pool ? { pool } : {})).body.secret as string;
  const reg = await client(srv.url).post('/v1/agent/register', {
    joinToken: jt,
    name,
    fingerprint: { capacity: { vcpus: 8, memoryMib: 8192, diskGib: 10 }, drivers: ['container'] },
  });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  return { api: client(srv.url, reg.body.token), hostId: reg.body.host.id };
}

test('a secret reaches only the agent that runs the instance; the API, events and the store never show it', async () => {
  assert.equal((await admin.post('/v1/projects', { name: 'vault' })).status, 201);
  const mine = await agent('vault-host', 'vault');
  const other = await agent('other-host');
  const made = await admin.post('/v1/secrets', { project: 'vault', name: 'db', value: VALUE });
  assert.equal(made.status, 201);
  assert.equal(JSON.stringify(made.body).includes(VALUE), false);
  assert.equal((await admin.post('/v1/secrets', { project: 'vault', name: 'db', value: 'x' })).status, 409);

  // A reference to a secret the project does not have stores nothing.
  const before = (await admin.get('/v1/instances?project=vault')).body.items.length;
  const missing = await admin.post('/v1/instances', {
    project: 'vault',
    kind: 'container',
    image: 'busybox',
    env: { X: { secret: 'nope' } },
  });
  assert.equal(missing.status, 422);
  assert.match(missing.body.error.message, /no secret "nope" in this project/);
  assert.equal((await admin.get('/v1/instances?project=vault')).body.items.length, before);

  const inst = await admin.post('/v1/instances', {
    project: 'vault',
    kind: 'container',
    image: 'busybox',
    name: 'app',
    env: { DB_PASSWORD: { secret: 'db' }, MODE: 'plain' },
  });
  assert.equal(inst.status, 201, JSON.stringify(inst.body));
  const id = inst.body.id as string;
  await until('placed', async () =>
    (await admin.get(`/v1/instances/${id}`)).body.state === 'scheduled' ? true : undefined,
  );
  const shown = (await admin.get(`/v1/instances/${id}`)).body;
  assert.deepEqual(shown.env, { DB_PASSWORD: { secret: 'db' }, MODE: 'plain' });

  const given = (await mine.api.get('/v1/agent/assignments?waitSeconds=0')).body.instances.find(
    (i: { id: string }) => i.id === id,
  );
  assert.deepEqual(given.env, { DB_PASSWORD: VALUE, MODE: 'plain' }, 'its host gets the value');
  const elsewhere = (await other.api.get('/v1/agent/assignments?waitSeconds=0')).body.instances;
  assert.equal(JSON.stringify(elsewhere).includes(VALUE), false, 'no other host does');

  const events = (await admin.get('/v1/events?limit=1000')).body.items;
  assert.equal(JSON.stringify(events).includes(VALUE), false, 'never in events');
  assert.equal(JSON.stringify((await admin.get('/v1/secrets?project=vault')).body).includes(VALUE), false);
  const store = ['strata.db', 'strata.db-wal'].map(f => readFileSync(join(srv.dataDir, f)).toString('latin1')).join('');
  assert.equal(store.includes(VALUE), false, 'sealed at rest');
  assert.equal(statSync(join(srv.dataDir, 'secret.key')).mode & 0o777, 0o600);

  // A new value reaches the agent; a secret in use cannot be deleted.
  const secretId = made.body.id as string;
  assert.equal((await admin.put(`/v1/secrets/${secretId}`, { value: `${VALUE}-2` })).status, 200);
  const again = (await mine.api.get('/v1/agent/assignments?waitSeconds=0')).body.instances.find(
    (i: { id: string }) => i.id === id,
  );
  assert.equal(again.env.DB_PASSWORD, `${VALUE}-2`);
  const inUse = await admin.delete(`/v1/secrets/${secretId}`);
  assert.equal(inUse.status, 409);
  assert.match(inUse.body.error.message, /used by instance\(s\) app/);
  assert.equal((await admin.delete(`/v1/instances/${id}?force=true`)).status, 204);
  assert.equal((await admin.delete(`/v1/secrets/${secretId}`)).status, 204);
});

test('readers see secret names, members set them, other projects see nothing', async () => {
  assert.equal((await admin.post('/v1/projects', { name: 'vault-2' })).status, 201);
  assert.equal((await admin.post('/v1/projects', { name: 'outside' })).status, 201);
  const token = async (user: string, project: string, role: string) => {
    assert.equal((await admin.post('/v1/users', { name: user, projects: [{ project, role }] })).status, 201);
    return client(srv.url, (await admin.post('/v1/tokens', { name: `${user}-t`, user })).body.secret);
  };
  const reader = await token('vreader', 'vault-2', 'reader');
  const member = await token('vmember', 'vault-2', 'member');
  const outsider = await token('vout', 'outside', 'admin');
  assert.equal((await reader.post('/v1/secrets', { project: 'vault-2', name: 'k', value: 'v' })).status, 403);
  const made = await member.post('/v1/secrets', { project: 'vault-2', name: 'k', value: 'v' });
  assert.equal(made.status, 201);
  assert.deepEqual(
    (await reader.get('/v1/secrets?project=vault-2')).body.items.map((s: { name: string }) => s.name),
    ['k'],
  );
  assert.equal((await reader.put(`/v1/secrets/${made.body.id}`, { value: 'w' })).status, 403);
  assert.equal((await outsider.get(`/v1/secrets/${made.body.id}`)).status, 404);
  assert.deepEqual((await outsider.get('/v1/secrets')).body.items, []);
});
