// /v1/deployments against a real server (no agent: replicas are placed on a
// registered host and stay scheduled): the answers, idempotence, dry runs,
// precise refusals that change nothing, and tenancy.
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { client, startTestServer, until, type Client, type TestServer } from './helpers.ts';

let srv: TestServer;
let admin: Client;

const template = { kind: 'container', image: 'busybox', resources: { vcpus: 1, memoryMib: 64 } };

before(async () => {
  srv = await startTestServer({ heartbeatSeconds: 3600 });
  admin = client(srv.url, srv.adminToken);
  // A host as an agent registers it, whose agent never comes: what is placed there stays scheduled.
  const jt = (await admin.post('/v1/join-tokens', {})).body;
  const reg = await admin.post('/v1/agent/register', {
    joinToken: jt.secret,
    name: 'h1',
    fingerprint: { capacity: { vcpus: 64, memoryMib: 65_536, diskGib: 100 }, drivers: ['container'] },
  });
  assert.equal(reg.status, 201);
});
after(() => srv.close());

const events = async (resource: string) =>
  ((await admin.get(`/v1/events?resource=${resource}&limit=1000`)).body.items as { type: string }[]).map(e => e.type);

test('create, show with replicas, the same spec again, a new template, scale, revisions, delete', async () => {
  const created = await admin.post('/v1/deployments', { project: 'default', name: 'web', replicas: 2, template });
  assert.equal(created.status, 201);
  const id = created.body.id as string;
  assert.equal(created.body.revision, 1);
  assert.equal(created.body.template.pidsLimit, 4096, 'the template is stored with its defaults');
  assert.deepEqual(created.body.strategy, {
    maxSurge: '25%',
    maxUnavailable: '25%',
    minHealthySeconds: 0,
    progressDeadlineSeconds: 600,
    canary: 0,
    canaryPromotion: 'manual',
    autoRollback: false,
    lostGraceSeconds: 60,
  });
  const shown = await until('two replicas placed', async () => {
    const d = (await admin.get(`/v1/deployments/${id}`)).body;
    return d.instances.filter((i: { state: string }) => i.state === 'scheduled').length === 2 ? d : undefined;
  });
  assert.deepEqual(
    shown.instances.map((i: { slot: number; revision: number }) => [i.slot, i.revision]),
    [
      [0, 1],
      [1, 1],
    ],
  );
  assert.equal(shown.status.observedGeneration, 1);
  assert.equal(shown.status.updatedReplicas, 2);

  const before = await events(id);
  const same = await admin.put(`/v1/deployments/${id}`, { replicas: 2, template });
  assert.equal(same.status, 200);
  assert.equal(same.body.generation, 1);
  assert.deepEqual(await events(id), before, 'the same spec again emits nothing');

  const dry = await admin.put(`/v1/deployments/${id}?dryRun=true`, {
    replicas: 3,
    template: { ...template, image: 'busybox:1.37' },
  });
  assert.equal(dry.status, 200);
  assert.equal(dry.body.revision, 2);
  assert.equal(dry.body.replicas, 3);
  assert.equal(dry.body.template.image, 'busybox:1.37');
  assert.deepEqual(await events(id), before, 'a dry run emits nothing');
  assert.equal((await admin.get(`/v1/deployments/${id}`)).body.revision, 1, 'and keeps nothing');

  const changed = await admin.put(`/v1/deployments/${id}`, {
    replicas: 2,
    template: { ...template, image: 'busybox:1.37' },
  });
  assert.equal(changed.body.revision, 2);
  assert.equal(changed.body.generation, 2);
  const scaled = await admin.patch(`/v1/deployments/${id}`, { replicas: 1 });
  assert.equal(scaled.body.replicas, 1);
  assert.deepEqual((await events(id)).slice(before.length), [
    'deployment.updated',
    'deployment.revision-created',
    'deployment.scaled',
  ]);
  const revisions = await admin.get(`/v1/deployments/${id}/revisions?limit=1`);
  assert.deepEqual(
    revisions.body.items.map((r: { revision: number }) => r.revision),
    [2],
  );
  const older = await admin.get(`/v1/deployments/${id}/revisions?limit=1&cursor=${revisions.body.nextCursor}`);
  assert.deepEqual(
    older.body.items.map((r: { revision: number; template: { image: string } }) => [r.revision, r.template.image]),
    [[1, 'busybox']],
  );
  assert.equal(older.body.nextCursor, null);

  const list = await admin.get('/v1/deployments?project=default&name=web');
  assert.deepEqual(
    list.body.items.map((d: { id: string }) => d.id),
    [id],
  );
  const deleted = await admin.delete(`/v1/deployments/${id}`);
  assert.equal(deleted.status, 202);
  assert.equal((await admin.get(`/v1/deployments/${id}`)).status, 404);
  await until('its replicas gone or going', async () => {
    const items = (await admin.get('/v1/instances?project=default')).body.items as { desiredState: string }[];
    return items.every(i => i.desiredState === 'deleted') ? true : undefined;
  });
});

test('bad specs are refused with the field at fault, and nothing is stored', async () => {
  const refuse = async (body: Record<string, unknown>, status: number, message: string | RegExp) => {
    const res = await admin.post('/v1/deployments', {
      project: 'default',
      name: 'bad',
      replicas: 1,
      template,
      ...body,
    });
    assert.equal(res.status, status, JSON.stringify(res.body));
    if (typeof message === 'string') assert.equal(res.body.error.message, message);
    else assert.match(res.body.error.message, message);
  };
  await refuse(
    { strategy: { maxSurge: 0, maxUnavailable: 0 } },
    400,
    /^body\.strategy maxSurge and maxUnavailable cannot both be 0/,
  );
  await refuse(
    { strategy: { maxSurge: '120%' } },
    400,
    'body.strategy.maxSurge must be a number of replicas (0 to 1000) or a percentage of them, such as "25%"',
  );
  await refuse({ template: { ...template, imag: 'x' } }, 400, /^body\.template has unknown field "imag"/);
  await refuse({ template: { ...template, name: 'x' } }, 400, /^body\.template has unknown field "name"/);
  await refuse(
    { template: { kind: 'vm', image: 'busybox', ports: [] } },
    400,
    /^body\.template\.ports applies to containers only/,
  );
  await refuse(
    { template: { ...template, healthCheck: { type: 'http' } } },
    400,
    'body.template.healthCheck.port a http health check needs a port',
  );
  await refuse({ template: { ...template, groups: ['nope'] } }, 422, 'no placement group "nope" in this project');
  await refuse({ replicas: 1001 }, 400, 'body.replicas must be <= 1000');
  await refuse({ name: 'x'.repeat(41) }, 400, 'body.name must NOT have more than 40 characters');
  await admin.post('/v1/projects', { name: 'small', quota: { vcpus: 2 } });
  await refuse(
    { project: 'small', replicas: 3 },
    422,
    'project small quota cannot hold 3 replicas of 1 vCPU, 64 MiB memory and 0 GiB disk: vcpus 0+3 > 2',
  );
  assert.deepEqual((await admin.get('/v1/deployments?name=bad')).body.items, []);
});

test('members write, readers read, other projects see nothing', async () => {
  await admin.post('/v1/projects', { name: 'alpha' });
  await admin.post('/v1/projects', { name: 'beta' });
  await admin.post('/v1/users', { name: 'mem', projects: [{ project: 'alpha', role: 'member' }] });
  await admin.post('/v1/users', { name: 'rdr', projects: [{ project: 'alpha', role: 'reader' }] });
  await admin.post('/v1/users', { name: 'out', projects: [{ project: 'beta', role: 'member' }] });
  const as = async (user: string) =>
    client(srv.url, (await admin.post('/v1/tokens', { name: `${user}-t`, user })).body.secret);
  const [mem, rdr, out] = [await as('mem'), await as('rdr'), await as('out')];
  const d = await mem.post('/v1/deployments', { project: 'alpha', name: 'app', replicas: 0, template });
  assert.equal(d.status, 201);
  assert.equal((await rdr.get(`/v1/deployments/${d.body.id}`)).status, 200);
  assert.equal((await rdr.patch(`/v1/deployments/${d.body.id}`, { replicas: 1 })).status, 403);
  assert.equal((await rdr.post('/v1/deployments', { project: 'alpha', name: 'x', replicas: 0, template })).status, 403);
  for (const res of [
    await out.get(`/v1/deployments/${d.body.id}`),
    await out.put(`/v1/deployments/${d.body.id}`, { replicas: 0, template }),
    await out.delete(`/v1/deployments/${d.body.id}`),
    await out.get(`/v1/deployments/${d.body.id}/revisions`),
  ])
    assert.equal(res.status, 404);
  assert.deepEqual((await out.get('/v1/deployments')).body.items, []);
  assert.equal(
    (await admin.delete('/v1/projects/alpha')).body.error.message,
    'project alpha still has deployments; delete them first',
  );
});

test('rollback, pause, resume, promote: a revision that does not exist is a 404 and changes nothing', async () => {
  const created = await admin.post('/v1/deployments', { project: 'default', name: 'roll', replicas: 1, template });
  const id = created.body.id as string;
  const refused = await admin.post(`/v1/deployments/${id}/rollback`, {});
  assert.equal(refused.status, 404);
  assert.match(refused.body.error.message, /^deployment roll has no revision before 1 to go back to$/);
  await admin.put(`/v1/deployments/${id}`, { replicas: 1, template: { ...template, image: 'busybox:1.37' } });
  // What the controller says meanwhile (its phase) is not the refusals' doing.
  const asked = async () => (await events(id)).filter(e => e !== 'deployment.phase');
  const before = await asked();
  const missing = await admin.post(`/v1/deployments/${id}/rollback`, { toRevision: 9 });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, 'not_found');
  assert.equal(missing.body.error.message, 'deployment roll has no revision 9 (its revisions are 1 to 2)');
  assert.equal((await admin.post(`/v1/deployments/${id}/rollback`, { toRevision: 0 })).status, 400);
  assert.equal((await admin.post(`/v1/deployments/${id}/rollback`, { toRevision: 2 })).status, 409);
  assert.equal((await admin.post(`/v1/deployments/${id}/promote`)).status, 409, 'no canaries wait');
  assert.deepEqual(await asked(), before, 'refusals change nothing');
  assert.equal((await admin.get(`/v1/deployments/${id}`)).body.revision, 2);

  const paused = await admin.post(`/v1/deployments/${id}/pause`);
  assert.equal(paused.status, 200);
  assert.equal(paused.body.paused, true);
  const back = await admin.post(`/v1/deployments/${id}/rollback`, {});
  assert.equal(back.status, 200);
  assert.equal(back.body.revision, 3);
  assert.equal(back.body.template.image, 'busybox');
  assert.equal((await admin.post(`/v1/deployments/${id}/resume`)).body.paused, false);
  const history = (await admin.get(`/v1/deployments/${id}/revisions`)).body.items;
  assert.deepEqual(
    history.map((r: { revision: number; copiedFrom: number | null; rolledBackFrom: number | null }) => [
      r.revision,
      r.copiedFrom,
      r.rolledBackFrom,
    ]),
    [
      [3, 1, null],
      [2, null, null],
      [1, null, null],
    ],
  );
  assert.deepEqual((await asked()).slice(before.length), [
    'deployment.updated',
    'deployment.rolled-back',
    'deployment.revision-created',
    'deployment.updated',
  ]);
  assert.equal((await admin.delete(`/v1/deployments/${id}`)).status, 202);
});
