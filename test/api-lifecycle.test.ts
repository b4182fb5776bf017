// Lists, selectors and the agent protocol, through the real HTTP server.
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { client, startTestServer, until, type Client, type TestServer } from './helpers.ts';

let srv: TestServer;
let admin: Client;

before(async () => {
  srv = await startTestServer();
  admin = client(srv.url, srv.adminToken);
});
after(() => srv.close());

test('cursor pagination returns every item once, in order', async () => {
  await admin.post('/v1/projects', { name: 'pages' });
  const made: string[] = [];
  for (let i = 0; i < 250; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: 50 }, (_, j) =>
        admin.post('/v1/instances', {
          project: 'pages',
          kind: 'container',
          image: 'b',
          name: `p${i + j}`,
          labels: { parity: (i + j) % 2 ? 'odd' : 'even', ...(j === 0 ? { first: 'yes' } : {}) },
        }),
      ),
    );
    made.push(...batch.map(r => r.body.id as string));
  }
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res: { body: { items: { id: string }[]; nextCursor: string | null } } = await admin.get(
      `/v1/instances?project=pages&limit=100${cursor ? `&cursor=${cursor}` : ''}`,
    );
    seen.push(...res.body.items.map(i => i.id));
    cursor = res.body.nextCursor;
    pages++;
  } while (cursor);
  assert.equal(pages, 3);
  assert.deepEqual(seen, [...made].sort());
  // Label selectors.
  const count = async (sel: string) =>
    (await admin.get(`/v1/instances?project=pages&limit=1000&labels=${encodeURIComponent(sel)}`)).body.items.length;
  assert.equal(await count('parity=odd'), 125);
  assert.equal(await count('parity!=odd'), 125);
  assert.equal(await count('first'), 5);
  assert.equal(await count('first,parity=even'), 5);
  assert.equal(await count('parity=none'), 0);
  assert.equal((await admin.get('/v1/instances?labels=a=b=c')).status, 400);
});

test('duplicate names are a conflict and create nothing', async () => {
  await admin.post('/v1/projects', { name: 'dups' });
  assert.equal((await admin.post('/v1/instances', { project: 'dups', kind: 'vm', image: 'b', name: 'x' })).status, 201);
  const again = await admin.post('/v1/instances', { project: 'dups', kind: 'vm', image: 'b', name: 'x' });
  assert.equal(again.status, 409);
  assert.equal((await admin.get('/v1/projects/dups')).body.usage.instances, 1, 'the refused one took no quota');
  assert.equal((await admin.post('/v1/projects', { name: 'dups' })).status, 409);
});

test('the agent protocol: watch wakes on placement, reports walk the state machine', async () => {
  await admin.post('/v1/projects', { name: 'agentp' });
  // A pool of its own keeps the other tests' pending instances off this host.
  const jt = await admin.post('/v1/join-tokens', { pool: 'agentp' });
  assert.equal(
    (
      await client(srv.url).post('/v1/agent/register', {
        joinToken: 'sjt_bad',
        name: 'a1',
        fingerprint: { capacity: { vcpus: 1, memoryMib: 1, diskGib: 1 }, drivers: [] },
      })
    ).status,
    401,
  );
  const reg = await client(srv.url).post('/v1/agent/register', {
    joinToken: jt.body.secret,
    name: 'a1',
    fingerprint: {
      capacity: { vcpus: 4, memoryMib: 4096, diskGib: 50 },
      drivers: ['container'],
      topology: { zone: 'z' },
    },
  });
  assert.equal(reg.status, 201);
  const agent = client(srv.url, reg.body.token);
  const first = await agent.get('/v1/agent/assignments?waitSeconds=0');
  assert.deepEqual(first.body.instances, []);
  // A long-poll with the current version waits until something lands here.
  const t0 = Date.now();
  const watch = agent.get(`/v1/agent/assignments?version=${first.body.version}&waitSeconds=20`);
  await new Promise(r => setTimeout(r, 100));
  const created = await admin.post('/v1/instances', { project: 'agentp', kind: 'container', image: 'b', name: 'w' });
  const woke = await watch;
  const waited = Date.now() - t0;
  assert.ok(waited < 5000, `the watch answered after ${waited} ms`);
  assert.equal(woke.body.instances.length, 1);
  assert.equal(woke.body.instances[0].id, created.body.id);
  assert.equal(woke.body.instances[0].state, 'scheduled');
  const id = created.body.id as string;
  // A report that skips the state machine is refused and changes nothing.
  const skip = await agent.post(`/v1/agent/instances/${id}/status`, { state: 'deleted' });
  assert.equal(skip.status, 409);
  assert.equal((await admin.get(`/v1/instances/${id}`)).body.state, 'scheduled');
  assert.equal((await agent.post(`/v1/agent/instances/${id}/status`, { state: 'starting' })).status, 200);
  // What the agent saw at start is stored with the state: a running instance already shows it.
  const observed = {
    address: '10.88.0.7',
    ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 }],
    accelerator: 'tcg',
  };
  assert.equal((await agent.post(`/v1/agent/instances/${id}/status`, { state: 'running', observed })).status, 200);
  const running = (await admin.get(`/v1/instances/${id}`)).body;
  assert.equal(running.state, 'running');
  assert.deepEqual(running.observed, { ...observed, health: null });
  // Health is the agent's to report, through /observed, never with a state.
  const withHealth = await agent.post(`/v1/agent/instances/${id}/status`, {
    state: 'running',
    observed: { health: { status: 'healthy' } },
  });
  assert.equal(withHealth.status, 400);
  assert.equal((await admin.delete(`/v1/instances/${id}`)).status, 202);
  const next = await agent.get(`/v1/agent/assignments?version=${woke.body.version}&waitSeconds=5`);
  assert.equal(next.body.instances[0].desiredState, 'deleted');
  // A failure reported across the delete (its start, or its destroy, failed) leaves it deleting.
  const crossed = await agent.post(`/v1/agent/instances/${id}/status`, { state: 'failed', message: 'pull failed' });
  assert.equal(crossed.status, 200);
  const still = (await admin.get(`/v1/instances/${id}`)).body;
  assert.deepEqual([still.state, still.desiredState, still.message], ['deleting', 'deleted', 'pull failed']);
  assert.equal((await agent.post(`/v1/agent/instances/${id}/status`, { state: 'deleted' })).status, 200);
  assert.equal((await admin.get(`/v1/instances/${id}`)).status, 404);
  assert.equal((await admin.get('/v1/projects/agentp')).body.usage.instances, 0);
  // Another host's agent cannot report on it.
  const other = await admin.post('/v1/instances', { project: 'agentp', kind: 'container', image: 'b', name: 'w2' });
  const jt2 = await admin.post('/v1/join-tokens', {});
  const reg2 = await client(srv.url).post('/v1/agent/register', {
    joinToken: jt2.body.secret,
    name: 'a2',
    fingerprint: { capacity: { vcpus: 1, memoryMib: 1, diskGib: 1 }, drivers: [] },
  });
  assert.equal(
    (await client(srv.url, reg2.body.token).post(`/v1/agent/instances/${other.body.id}/status`, { state: 'starting' }))
      .status,
    404,
  );
});

test('hosts go not-ready then down without heartbeats, and back to ready with one', async () => {
  const fast = await startTestServer({ heartbeatSeconds: 1 });
  try {
    const a = client(fast.url, fast.adminToken);
    const jt = await a.post('/v1/join-tokens', {});
    const reg = await client(fast.url).post('/v1/agent/register', {
      joinToken: jt.body.secret,
      name: 'sleepy',
      fingerprint: { capacity: { vcpus: 1, memoryMib: 64, diskGib: 1 }, drivers: [] },
    });
    const id = reg.body.host.id as string;
    const waitFor = async (state: string) => {
      for (let i = 0; i < 300; i++) {
        if ((await a.get(`/v1/hosts/${id}`)).body.state === state) return;
        await new Promise(r => setTimeout(r, 100));
      }
      throw new Error(`host never became ${state}`);
    };
    await waitFor('not-ready');
    await waitFor('down');
    assert.equal((await client(fast.url, reg.body.token).post('/v1/agent/heartbeat', {})).status, 200);
    assert.equal((await a.get(`/v1/hosts/${id}`)).body.state, 'ready');
    const types = (await a.get('/v1/events?limit=1000')).body.items
      .filter((e: { type: string }) => e.type === 'host.state')
      .map((e: { data: { to: string } }) => e.data.to);
    assert.deepEqual(types, ['not-ready', 'down', 'ready']);
  } finally {
    await fast.close();
  }
});

test('logs of an instance whose agent never connects answer 503 after a bounded wait', async () => {
  // One-second heartbeats: the server waits two of them for the agent.
  const fast = await startTestServer({ heartbeatSeconds: 1 });
  try {
    const a = client(fast.url, fast.adminToken);
    const jt = await a.post('/v1/join-tokens', {});
    const fingerprint = { capacity: { vcpus: 2, memoryMib: 1024, diskGib: 5 }, drivers: ['container'] };
    assert.equal(
      (await client(fast.url).post('/v1/agent/register', { joinToken: jt.body.secret, name: 'silent', fingerprint }))
        .status,
      201,
    );
    const made = await a.post('/v1/instances', { project: 'default', kind: 'container', image: 'busybox' });
    const id = made.body.id as string;
    await until('placed', async () =>
      (await a.get(`/v1/instances/${id}`)).body.state === 'scheduled' ? true : undefined,
    );
    const res = await a.get(`/v1/instances/${id}/logs`);
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'unavailable');
    assert.match(res.body.error.message, /agent of host silent is not connected \(waited 2 s\)/);
  } finally {
    await fast.close();
  }
});

test('a stream request answers 503 when the connected agent is asked but never dials back', async () => {
  const own = await startTestServer();
  const { default: WebSocket } = await import('ws');
  let control: InstanceType<typeof WebSocket> | undefined;
  try {
    const a = client(own.url, own.adminToken);
    const jt = await a.post('/v1/join-tokens', {});
    const fingerprint = { capacity: { vcpus: 2, memoryMib: 1024, diskGib: 5 }, drivers: ['container'] };
    const reg = await client(own.url).post('/v1/agent/register', {
      joinToken: jt.body.secret,
      name: 'mute',
      fingerprint,
    });
    assert.equal(reg.status, 201);
    // An agent that holds its control socket and hears the request, but never opens the data socket.
    const opens: { op: string; instance: string }[] = [];
    const ws = new WebSocket(`${own.url.replace(/^http/, 'ws')}/v1/agent/streams`, {
      headers: { authorization: `Bearer ${reg.body.token}` },
    });
    control = ws;
    ws.on('message', (m: Buffer) => {
      const msg = JSON.parse(m.toString()) as { type: string; op: string; instance: string };
      if (msg.type === 'open') opens.push(msg);
    });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const made = await a.post('/v1/instances', { project: 'default', kind: 'container', image: 'busybox' });
    const id = made.body.id as string;
    await until('placed', async () =>
      (await a.get(`/v1/instances/${id}`)).body.state === 'scheduled' ? true : undefined,
    );
    const asked = Date.now();
    const res = await a.get(`/v1/instances/${id}/logs`);
    const waited = Date.now() - asked;
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'unavailable');
    assert.match(res.body.error.message, /agent of host mute did not open the stream within 10 s/);
    assert.deepEqual(
      opens.map(o => [o.op, o.instance]),
      [['logs', id]],
      'the agent was asked once',
    );
    assert.ok(waited >= 9_500 && waited < 20_000, `answered after ${waited} ms`);
  } finally {
    control?.close();
    await own.close();
  }
});

test('strings that could steer a runtime, a mount or the store are refused with a 400 and store nothing', async () => {
  const before = (await admin.get('/v1/instances?limit=1000&project=default')).body.items.length;
  const base = { project: 'default', kind: 'container', image: 'busybox' };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['an image path out of the registry', { image: '../../etc/passwd' }, /body\.image must match pattern/],
    ['an image with a query', { image: '../../127.0.0.1:7399/x?' }, /body\.image/],
    ['an image in upper case', { image: 'BusyBox' }, /body\.image/],
    ['a reference with a name over 255 characters', { image: 'a'.repeat(300) }, /body\.image is not an OCI image/],
    [
      'a disk image URL for a container',
      { image: 'http://images.example.com/a.raw' },
      /body\.image is a disk image URL, which only bare-metal instances take; containers take an OCI/,
    ],
    [
      'a disk image URL with credentials in it',
      { kind: 'metal', image: 'http://user:pass@images.example.com/a.raw' },
      /body\.image must match pattern/,
    ],
    [
      'mount options in a tmpfs path',
      { tmpfs: [{ path: '/t1:size=200m,exec,suid', sizeMib: 1 }] },
      /body\.tmpfs\.0\.path/,
    ],
    ['a tmpfs path with ..', { tmpfs: [{ path: '/a/../etc' }] }, /body\.tmpfs\.0\.path/],
    ['a working dir with a space', { workingDir: '/a b' }, /body\.workingDir/],
    [
      'a label key off the grammar, holding an object',
      { labels: { _k: { x: 1 } } },
      /body\.labels has unknown field "_k"/,
    ],
    ['a label key over 63 characters', { labels: { ['k'.repeat(64)]: 'v' } }, /body\.labels/],
    ['an env name that is shell syntax', { env: { '$(id)': 'x' } }, /body\.env has unknown field/],
  ];
  for (const [why, extra, message] of cases) {
    const res = await admin.post('/v1/instances', { ...base, ...extra });
    assert.equal(res.status, 400, `${why}: ${JSON.stringify(res.body)}`);
    assert.match(res.body.error.message, message, why);
  }
  assert.equal((await admin.patch('/v1/projects/default', { labels: { _k: { x: 1 } } })).status, 400);
  const since = await admin.get('/v1/events?since=1e400');
  assert.equal(since.status, 400, 'Infinity is no sequence number');
  assert.equal((await admin.get('/v1/instances?limit=1000&project=default')).body.items.length, before);
});

test("a join token cannot take over a live host's name; a down host's, or a removed one's, it can", async () => {
  const fast = await startTestServer({ heartbeatSeconds: 1 });
  try {
    const a = client(fast.url, fast.adminToken);
    const jt = (await a.post('/v1/join-tokens', {})).body.secret as string;
    const fingerprint = { capacity: { vcpus: 1, memoryMib: 64, diskGib: 1 }, drivers: [] };
    const first = await client(fast.url).post('/v1/agent/register', { joinToken: jt, name: 'held', fingerprint });
    assert.equal(first.status, 201);
    const owner = client(fast.url, first.body.token);
    const thief = await client(fast.url).post('/v1/agent/register', { joinToken: jt, name: 'held', fingerprint });
    assert.equal(thief.status, 409);
    assert.match(thief.body.error.message, /host held is registered and its agent is alive/);
    assert.equal((await owner.post('/v1/agent/heartbeat', {})).status, 200, 'the owner keeps its credential');
    // Once its agent is gone for good (down), a reinstalled agent may register under the name.
    await until('down', async () =>
      (await a.get(`/v1/hosts/${first.body.host.id}`)).body.state === 'down' ? true : undefined,
    );
    const reinstalled = await client(fast.url).post('/v1/agent/register', { joinToken: jt, name: 'held', fingerprint });
    assert.equal(reinstalled.status, 201);
    assert.equal(reinstalled.body.host.id, first.body.host.id);
    assert.equal((await owner.post('/v1/agent/heartbeat', {})).status, 401, 'the old credential is gone');
  } finally {
    await fast.close();
  }
});

test("a dead host's instances are lost; they can be deleted by force, and the host removed with them", async () => {
  const fast = await startTestServer({ heartbeatSeconds: 1 });
  try {
    const a = client(fast.url, fast.adminToken);
    assert.equal((await a.post('/v1/projects', { name: 'doom' })).status, 201);
    const jt = (await a.post('/v1/join-tokens', { pool: 'doom' })).body.secret as string;
    const fingerprint = { capacity: { vcpus: 8, memoryMib: 8192, diskGib: 10 }, drivers: ['container'] };
    const reg = await client(fast.url).post('/v1/agent/register', { joinToken: jt, name: 'doomed', fingerprint });
    const agent = client(fast.url, reg.body.token);
    const ids: string[] = [];
    for (const name of ['l1', 'l2', 'l3']) {
      const id = (await a.post('/v1/instances', { project: 'doom', kind: 'container', image: 'busybox', name })).body
        .id as string;
      await until(`${name} placed`, async () =>
        (await a.get(`/v1/instances/${id}`)).body.state === 'scheduled' ? true : undefined,
      );
      for (const state of ['starting', 'running'])
        assert.equal((await agent.post(`/v1/agent/instances/${id}/status`, { state })).status, 200);
      ids.push(id);
    }
    const [l1, l2, l3] = ids as [string, string, string];
    // The agent goes silent: the host goes down and what ran there is lost.
    const lost = await until('lost', async () => {
      const i = (await a.get(`/v1/instances/${l1}`)).body;
      return i.state === 'lost' ? i : undefined;
    });
    assert.match(lost.message, /host doomed is down \(no heartbeat for \d+ s\)/);
    const events = (await a.get(`/v1/events?resource=${l1}&limit=100`)).body.items as {
      type: string;
      data: { to?: string };
    }[];
    assert.ok(events.some(e => e.type === 'instance.state' && e.data.to === 'lost'));

    // A plain delete waits for a host that cannot answer; a forced one does not.
    assert.equal((await a.delete(`/v1/instances/${l1}`)).status, 202);
    assert.equal((await a.get(`/v1/instances/${l1}`)).body.state, 'deleting');
    assert.equal((await a.delete(`/v1/instances/${l1}?force=true`)).status, 204);
    assert.equal((await a.get(`/v1/instances/${l1}`)).status, 404);

    // The agent comes back and finds l2 still running: it is running again.
    assert.equal((await agent.post('/v1/agent/heartbeat', {})).status, 200);
    assert.equal((await agent.post(`/v1/agent/instances/${l2}/status`, { state: 'running' })).status, 200);
    assert.equal((await a.get(`/v1/instances/${l2}`)).body.state, 'running');

    // Gone for good: a cluster admin removes the host with what it held, once it is down.
    const live = await a.delete('/v1/hosts/doomed?force=true');
    assert.equal(live.status, 409, 'not while its agent answers');
    assert.match(live.body.error.message, /not down: its agent still answers/);
    await until('down again', async () =>
      (await a.get(`/v1/hosts/${reg.body.host.id}`)).body.state === 'down' ? true : undefined,
    );
    const refused = await a.delete('/v1/hosts/doomed');
    assert.equal(refused.status, 409);
    assert.match(refused.body.error.message, /still holds 2 instance\(s\).*force/);
    assert.equal((await a.delete('/v1/hosts/doomed?force=true')).status, 204);
    for (const id of [l2, l3]) assert.equal((await a.get(`/v1/instances/${id}`)).status, 404);
    assert.equal((await a.get('/v1/projects/doom')).body.usage.instances, 0, 'their quota is released');
    assert.equal((await a.delete('/v1/projects/doom')).status, 204, 'and the project can go');
  } finally {
    await fast.close();
  }
});

test('a spec is bounded as a whole, and a page of large instances is cut by size, not only by count', async () => {
  assert.equal((await admin.post('/v1/projects', { name: 'big' })).status, 201);
  const word = 'x'.repeat(8000);
  const tooBig = await admin.post('/v1/instances', {
    project: 'big',
    kind: 'container',
    image: 'busybox',
    command: Array(17).fill(word),
  });
  assert.equal(tooBig.status, 400);
  assert.match(tooBig.body.error.message, /an instance spec may take at most 131072/);
  // 100 instances of about 96 KiB each: more than one 8 MiB page holds.
  for (let i = 0; i < 100; i += 20) {
    const made = await Promise.all(
      Array.from({ length: 20 }, (_, j) =>
        admin.post('/v1/instances', {
          project: 'big',
          kind: 'container',
          image: 'busybox',
          name: `big-${i + j}`,
          command: Array(12).fill(word),
        }),
      ),
    );
    assert.ok(
      made.every(r => r.status === 201),
      JSON.stringify(made.find(r => r.status !== 201)?.body),
    );
  }
  const seen = new Set<string>();
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res: { status: number; body: { items: { id: string }[]; nextCursor: string | null } } = await admin.get(
      `/v1/instances?project=big&limit=1000${cursor ? `&cursor=${cursor}` : ''}`,
    );
    assert.equal(res.status, 200);
    res.body.items.forEach(i => seen.add(i.id));
    cursor = res.body.nextCursor;
    pages++;
  } while (cursor);
  assert.equal(seen.size, 100);
  assert.ok(pages >= 2, `${pages} page(s)`);
});
