// What one client can hold of the server is bounded: a request must arrive
// in time, and connections beyond the cap are closed as they come.
import { strict as assert } from 'node:assert';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { client, startTestServer, until } from './helpers.ts';

function open(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), hostname, () => resolve(s));
    s.once('error', reject);
  });
}

test('slow senders are answered 408 in the error shape and cut off', async () => {
  const srv = await startTestServer({ limits: { requestTimeoutMs: 2000 } });
  const sockets: Socket[] = [];
  try {
    const answers: string[] = [];
    const closed: boolean[] = [];
    for (let i = 0; i < 40; i++) {
      const s = await open(srv.url);
      sockets.push(s);
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('error', () => undefined);
      s.on('close', () => ((answers[i] = got), (closed[i] = true)));
      s.write(
        `POST /v1/agent/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"joinToken":`,
      );
    }
    // A byte every so often, so that no idle timer ends them: only the request deadline can.
    const drip = setInterval(() => sockets.forEach(s => s.writable && s.write(' ')), 300);
    try {
      await until('every slow connection is closed', async () =>
        closed.filter(Boolean).length === 40 ? true : undefined,
      );
    } finally {
      clearInterval(drip);
    }
    for (const a of answers) {
      assert.match(a, /^HTTP\/1\.1 408 /);
      const body = JSON.parse(a.slice(a.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'request_timeout');
    }
    // The server still answers everyone else.
    assert.equal((await client(srv.url).get('/healthz')).status, 200);
  } finally {
    sockets.forEach(s => s.destroy());
    await srv.close();
  }
});

test('connections beyond the cap are closed at once; the server serves again when they go', async () => {
  const srv = await startTestServer({ limits: { maxConnections: 5 } });
  const sockets: Socket[] = [];
  try {
    const closed = new Set<number>();
    for (let i = 0; i < 10; i++) {
      const s = await open(srv.url);
      s.on('close', () => closed.add(i));
      s.on('error', () => undefined);
      sockets.push(s);
    }
    await until('the five over the cap are closed', async () => (closed.size >= 5 ? true : undefined));
    assert.deepEqual(
      [...closed].sort((a, b) => a - b),
      [5, 6, 7, 8, 9],
    );
    sockets.forEach(s => s.destroy());
    await until('a new client is served', async () =>
      (
        await client(srv.url)
          .get('/healthz')
          .catch(() => undefined)
      )?.status === 200
        ? true
        : undefined,
    );
  } finally {
    sockets.forEach(s => s.destroy());
    await srv.close();
  }
});

test('an address that keeps failing to authenticate is refused with 429 and Retry-After, before its tokens are checked', async () => {
  const srv = await startTestServer({ limits: { authFailureBurst: 20, authFailuresPerSecond: 0.2 } });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++) statuses.push((await client(srv.url, `stk_wrong-${i}`).get('/v1/projects')).status);
    assert.deepEqual(statuses.slice(0, 20), Array(20).fill(401));
    assert.deepEqual(statuses.slice(20), Array(5).fill(429));
    const refused = await client(srv.url, srv.adminToken).get('/v1/projects');
    assert.equal(refused.status, 429, 'even a good token waits: nothing is checked from that address meanwhile');
    assert.equal(refused.body.error.code, 'rate_limited');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    // Join tokens count the same.
    const reg = await client(srv.url).post('/v1/agent/register', {
      joinToken: 'sjt_wrong',
      name: 'x',
      fingerprint: { capacity: { vcpus: 1, memoryMib: 64, diskGib: 1 }, drivers: [] },
    });
    assert.equal(reg.status, 429);
    // It refills (one every five seconds here, so the 25 attempts above cannot
    // have earned one back on a busy machine): an attempt is allowed again.
    await until('allowed again', async () =>
      (await client(srv.url, srv.adminToken).get('/v1/projects')).status === 200 ? true : undefined,
    );
  } finally {
    await srv.close();
  }
});

test('a token that sends more than its rate is answered 429 with Retry-After; other tokens are not', async () => {
  const srv = await startTestServer({ limits: { tokenBurst: 30, tokenRequestsPerSecond: 1 } });
  try {
    const admin = client(srv.url, srv.adminToken);
    const other = (await admin.post('/v1/tokens', { name: 'other' })).body.secret as string;
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await admin.get('/v1/projects')).status);
    assert.ok(
      statuses.slice(0, 29).every(s => s === 200),
      statuses.join(' '),
    );
    const limited = await admin.get('/v1/projects');
    assert.equal(limited.status, 429);
    assert.match(limited.body.error.message, /more than 1 requests a second/);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    assert.equal((await client(srv.url, other).get('/v1/projects')).status, 200);
  } finally {
    await srv.close();
  }
});

test('a body over 1 MiB is a 413 and a body that is not JSON a 415, in the error shape, and neither creates anything', async () => {
  const srv = await startTestServer();
  try {
    const a = client(srv.url, srv.adminToken);
    const count = async () => (await a.get('/v1/projects?limit=1000')).body.items.length as number;
    const before = await count();
    // Valid JSON, so only its size can be the reason.
    const big = await a.post('/v1/projects', { name: 'big', description: 'x'.repeat(1024 * 1024) });
    assert.equal(big.status, 413, JSON.stringify(big.body));
    assert.equal(big.body.error.code, 'payload_too_large');
    assert.equal(typeof big.body.error.message, 'string');
    // The same body as form data: refused for its type, not its content.
    const form = await a.post('/v1/projects', 'name=plain', { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(form.status, 415, JSON.stringify(form.body));
    assert.equal(form.body.error.code, 'unsupported_media_type');
    const bytes = await a.post('/v1/projects', JSON.stringify({ name: 'plain' }), {
      'content-type': 'application/octet-stream',
    });
    assert.equal(bytes.status, 415, JSON.stringify(bytes.body));
    assert.equal(bytes.body.error.code, 'unsupported_media_type');
    assert.equal(await count(), before);
  } finally {
    await srv.close();
  }
});
