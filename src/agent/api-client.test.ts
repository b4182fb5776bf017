// The agent's HTTP client against servers that misbehave: one that never
// answers, one that drops the connection, one that refuses.
import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Gate } from '../lib/gate.ts';
import { AgentApi, AgentApiError, isTransient } from './api-client.ts';

async function serve(handle: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server }> {
  const server = createServer(handle);
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

test('a report the server never answers is given up after the timeout, and gives back its place in the gate', async () => {
  const { url, server } = await serve(() => undefined);
  const gate = new Gate(1);
  const api = new AgentApi(url, 't', gate, 200);
  const err = await api.report('ins_1', 'running').then(
    () => assert.fail('answered'),
    (e: unknown) => e,
  );
  assert.equal(isTransient(err), true);
  assert.equal(gate.running, 0);
  server.closeAllConnections();
  server.close();
});

test('a dropped connection and a busy server are worth another try; a refusal is not', async () => {
  const { url, server } = await serve((req, res) => {
    if (req.url?.includes('reset')) return req.socket.destroy();
    const status = req.url?.includes('busy') ? 503 : 409;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: status === 503 ? 'unavailable' : 'conflict', message: 'no' } }));
  });
  const api = new AgentApi(url, 't');
  const failure = (id: string) =>
    api.report(id, 'running').then(
      () => assert.fail('answered'),
      (e: unknown) => e,
    );
  assert.equal(isTransient(await failure('reset')), true);
  assert.equal(isTransient(await failure('busy')), true);
  const refused = await failure('ins_1');
  assert.ok(refused instanceof AgentApiError && refused.status === 409);
  assert.equal(isTransient(refused), false);
  server.closeAllConnections();
  server.close();
});

test('heartbeats a heartbeat apart share one connection (Node’s global pool drops it after 5 s idle)', async () => {
  const { url, server } = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ heartbeatSeconds: 5 }));
  });
  server.keepAliveTimeout = 30_000;
  let connections = 0;
  server.on('connection', () => connections++);
  const api = new AgentApi(url, 't');
  try {
    await api.heartbeat();
    // One heartbeat interval and its jitter: past Node's default idle limit.
    await new Promise(r => setTimeout(r, 5_600));
    await api.heartbeat();
    assert.equal(connections, 1);
  } finally {
    api.close();
    server.closeAllConnections();
    server.close();
  }
});
