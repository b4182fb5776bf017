// The event stream follows live changes, and stops when the caller loses access.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { client, startTestServer, until, type Client, type TestServer } from './helpers.ts';

let srv: TestServer;
let admin: Client;

before(async () => {
  srv = await startTestServer();
  admin = client(srv.url, srv.adminToken);
  assert.equal((await admin.post('/v1/projects', { name: 'stream-a' })).status, 201);
  assert.equal(
    (await admin.post('/v1/users', { name: 'sam', projects: [{ project: 'stream-a', role: 'member' }] })).status,
    201,
  );
});
after(() => srv.close());

async function openStream(token: string, query: string) {
  const ctl = new AbortController();
  const res = await fetch(`${srv.url}/v1/events?follow=true&${query}`, {
    headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    signal: ctl.signal,
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const reader = res.body!.getReader();
  let text = '';
  const decoder = new TextDecoder();
  /** Reads until `pred` holds on everything received, or the stream ends. */
  const readUntil = async (pred: (t: string) => boolean, ms = 60_000): Promise<{ text: string; ended: boolean }> => {
    const deadline = Date.now() + ms;
    while (!pred(text)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`stream timed out; got: ${text}`);
      const chunk = await Promise.race([
        reader.read(),
        new Promise<'timeout'>(r => setTimeout(() => r('timeout'), left)),
      ]);
      if (chunk === 'timeout') continue;
      if (chunk.done) return { text, ended: true };
      text += decoder.decode(chunk.value);
    }
    return { text, ended: false };
  };
  return { readUntil, close: () => ctl.abort() };
}

test('a follower receives events created after it connected, with ids', async () => {
  const tok = (await admin.post('/v1/tokens', { name: 'sam-1', user: 'sam' })).body.secret as string;
  const s = await openStream(tok, 'project=stream-a');
  try {
    await s.readUntil(t => t.includes(': connected'));
    const created = await client(srv.url, tok).post('/v1/instances', {
      project: 'stream-a',
      kind: 'container',
      image: 'busybox',
      name: 'live-1',
    });
    assert.equal(created.status, 201);
    const { text } = await s.readUntil(t => t.includes('live-1'));
    const frame = text.split('\n\n').find(f => f.includes('live-1'))!;
    assert.match(frame, /^id: \d+$/m);
    assert.match(frame, /^event: instance\.created$/m);
    const data = JSON.parse(/^data: (.*)$/m.exec(frame)![1]!) as { resourceId: string };
    assert.equal(data.resourceId, created.body.id);
  } finally {
    s.close();
  }
});

test('the stream ends when the follower is removed from the project', async () => {
  const tok = (await admin.post('/v1/tokens', { name: 'sam-2', user: 'sam' })).body.secret as string;
  const s = await openStream(tok, 'project=stream-a');
  try {
    await s.readUntil(t => t.includes(': connected'));
    assert.equal((await admin.delete('/v1/projects/stream-a/members/sam')).status, 204);
    const { ended } = await s.readUntil(() => false);
    assert.equal(ended, true);
  } catch (err) {
    s.close();
    throw err;
  }
});

test('the stream ends when its token is revoked', async () => {
  assert.equal((await admin.put('/v1/projects/stream-a/members/sam', { role: 'reader' })).status, 200);
  const created = await admin.post('/v1/tokens', { name: 'sam-3', user: 'sam' });
  const s = await openStream(created.body.secret, 'project=stream-a');
  try {
    await s.readUntil(t => t.includes(': connected'));
    assert.equal((await admin.delete(`/v1/tokens/${created.body.id}`)).status, 204);
    const { ended } = await s.readUntil(() => false);
    assert.equal(ended, true);
  } catch (err) {
    s.close();
    throw err;
  }
});

test('one token holds at most 16 streams; the 17th is a 429 with Retry-After until one closes', async () => {
  const reader = (await admin.post('/v1/tokens', { name: 'many-streams' })).body.secret as string;
  const open: AbortController[] = [];
  const follow = async () => {
    const ctl = new AbortController();
    const res = await fetch(`${srv.url}/v1/events?follow=true`, {
      headers: { authorization: `Bearer ${reader}`, accept: 'text/event-stream' },
      signal: ctl.signal,
    });
    if (res.status === 200) open.push(ctl);
    else await res.text();
    return res;
  };
  try {
    for (let i = 0; i < 16; i++) assert.equal((await follow()).status, 200, `stream ${i + 1}`);
    const refused = await follow();
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '5');
    // Another token is not held back by this one.
    const other = await fetch(`${srv.url}/v1/events?follow=true`, {
      headers: { authorization: `Bearer ${srv.adminToken}`, accept: 'text/event-stream' },
    });
    assert.equal(other.status, 200);
    await other.body?.cancel();
    open.pop()!.abort();
    const again = await until('a slot is free again', async () => {
      const res = await follow();
      return res.status === 200 ? res : undefined;
    });
    assert.equal(again.status, 200);
  } finally {
    open.forEach(c => c.abort());
  }
});

test('a follower that does not read is cut off once its unsent events pass the bound', async () => {
  const small = await startTestServer({ limits: { streamBufferBytes: 64 * 1024, tokenRequestsPerSecond: 0 } });
  const { connect } = await import('node:net');
  try {
    const a = client(small.url, small.adminToken);
    const { hostname, port } = new URL(small.url);
    // A raw client that sends its request and then never reads a byte.
    const sock = connect(Number(port), hostname);
    await new Promise(r => sock.once('connect', r));
    sock.write(
      `GET /v1/events?follow=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${small.adminToken}\r\nAccept: text/event-stream\r\n\r\n`,
    );
    sock.pause();
    let closed = false;
    sock.on('close', () => (closed = true));
    sock.on('error', () => undefined);
    // 8,000 events of about 500 bytes: more than the kernel's buffers take (a
    // few MiB) plus the bound, while the reader reads nothing.
    const image = `registry.example.com/${'a'.repeat(200)}:latest`;
    for (let batch = 0; batch < 160; batch++) {
      const made = await Promise.all(
        Array.from({ length: 50 }, () => a.post('/v1/instances', { project: 'default', kind: 'container', image })),
      );
      assert.ok(
        made.every(r => r.status === 201),
        JSON.stringify(made.find(r => r.status !== 201)?.body),
      );
    }
    // A paused socket cannot see its end: read what was sent, and the end must follow.
    sock.on('data', () => undefined);
    sock.resume();
    await until('the slow reader is cut off', async () => (closed ? true : undefined));
    // Everyone else is still served.
    assert.equal((await a.get('/v1/events?limit=1')).status, 200);
  } finally {
    await small.close();
  }
});

test('an event stream ends when its token expires', async () => {
  const quick = await startTestServer();
  try {
    const { hashSecret, newSecret } = await import('../src/services/auth.ts');
    // A token that expires in two seconds (the API's shortest is a minute).
    const secret = newSecret('stk');
    const admin = (
      await quick.server.store.db
        .selectFrom('users')
        .select('id')
        .where('cluster_admin', '=', 1)
        .executeTakeFirstOrThrow()
    ).id;
    await quick.server.store.db
      .insertInto('tokens')
      .values({
        id: 'tok_expiringsoon00000000000000',
        name: 'soon',
        hash: hashSecret(secret),
        user_id: admin,
        host_id: null,
        created_at: new Date().toISOString(),
        expires_at: new Date(Date.now() + 2000).toISOString(),
      })
      .execute();
    const res = await fetch(`${quick.url}/v1/events?follow=true`, {
      headers: { authorization: `Bearer ${secret}`, accept: 'text/event-stream' },
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
    }
    assert.equal((await client(quick.url, secret).get('/v1/projects')).status, 401);
  } finally {
    await quick.close();
  }
});

test('following with since: the backlog, then live events, each once and in order, none lost at the switch', async () => {
  const own = await startTestServer({ limits: { tokenRequestsPerSecond: 0 } });
  const { connect } = await import('node:net');
  const sockets: import('node:net').Socket[] = [];
  try {
    const a = client(own.url, own.adminToken);
    const seqs = async (): Promise<number[]> => {
      const all: number[] = [];
      for (let since = 0; ; ) {
        const page = (await a.get(`/v1/events?since=${since}&limit=1000`)).body;
        all.push(...(page.items as { seq: number }[]).map(e => e.seq));
        if (page.items.length === 0) return all;
        since = page.nextSince;
      }
    };
    // A backlog far larger than the sockets' buffers, so the server is still
    // sending it, waiting for the reader, while live events commit: 1,200
    // events of 20 KB, written in one go.
    const project = (await a.get('/v1/projects/default')).body.id as string;
    await own.server.store.write(async ({ emit }) => {
      for (let i = 0; i < 1200; i++)
        emit({
          type: 'project.updated',
          resourceType: 'project',
          resourceId: project,
          projectId: project,
          actor: 'test',
          data: { fields: [`${i}`.padEnd(20_000, '.')] },
        });
    });
    const backlog = await seqs();
    /**
     * A raw follower from `since` that reads nothing until resumed. It is
     * ready once bytes wait in its socket: the server writes the first of them
     * after it subscribed to live events.
     */
    const follow = async (since: number) => {
      const { hostname, port } = new URL(own.url);
      const sock = connect(Number(port), hostname);
      sockets.push(sock);
      sock.pause();
      await new Promise(r => sock.once('connect', r));
      const parts: string[] = [];
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => parts.push(d));
      sock.pause();
      sock.write(
        `GET /v1/events?follow=true&since=${since} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${own.adminToken}\r\nAccept: text/event-stream\r\n\r\n`,
      );
      await until('the server is sending', async () => (unreadBytes(sock.localPort!) > 0 ? true : undefined));
      return {
        since,
        text: () => parts.join(''),
        has: (seq: number) => parts.join('').includes(`\nid: ${seq}\n`),
        resume: () => sock.resume(),
      };
    };
    // One follower whose backlog is one page (the server reads 1,000 at a
    // time) and one whose backlog takes two.
    const onePage = await follow(backlog.at(-901)!);
    const twoPages = await follow(backlog.at(-1101)!);
    for (let i = 0; i < 4; i++) {
      const made = await Promise.all(
        Array.from({ length: 50 }, () =>
          a.post('/v1/instances', { project: 'default', kind: 'container', image: 'busybox' }),
        ),
      );
      assert.ok(made.every(r => r.status === 201));
    }
    const all = await seqs();
    const last = all.at(-1)!;
    for (const f of [onePage, twoPages]) {
      f.resume();
      await until(`the follower from ${f.since} reaches ${last}`, async () => (f.has(last) ? true : undefined));
      const got = [...f.text().matchAll(/^id: (\d+)$/gm)].map(m => Number(m[1]));
      assert.deepEqual(
        got,
        all.filter(s => s > f.since),
      );
    }
  } finally {
    for (const s of sockets) s.destroy();
    await own.close();
  }
});

/** Bytes received on the loopback TCP socket with this local port that its reader has not read yet. */
function unreadBytes(localPort: number): number {
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || Number.parseInt(f[1]!.split(':')[1]!, 16) !== localPort) continue;
    return Number.parseInt(f[4]!.split(':')[1]!, 16);
  }
  return 0;
}
