// A fast producer behind a client that does not read: the relay pauses each
// side in turn, so the process itself is held up rather than the server
// buffering its output (docs/agent-protocol.md, streams).
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { Channel, parseFrame } from '../src/lib/stream-frames.ts';
import { startContainerFixture, until, type ContainerFixture } from './helpers.ts';

let fx: ContainerFixture;

before(async () => {
  fx = await startContainerFixture('backpressure-node');
});
after(() => fx.close());

const execUrl = (id: string, script: string) =>
  `${fx.srv.url.replace('http', 'ws')}/v1/instances/${id}/exec?command=sh&command=-c&command=${encodeURIComponent(script)}`;

/** A command's standard output through the API's exec. */
async function execOut(id: string, script: string): Promise<string> {
  const ws = new WebSocket(execUrl(id, script), { headers: { authorization: `Bearer ${fx.srv.adminToken}` } });
  let out = '';
  ws.on('message', (d: Buffer) => {
    const f = parseFrame(d);
    if (f?.channel === Channel.stdout) out += f.payload.toString();
  });
  await new Promise((resolve, reject) => ws.once('close', resolve).once('error', reject));
  return out;
}

const CHUNK = 64 * 1024;
const CHUNKS = 4096;

test('exec: a client that does not read holds up the process; once it reads, the process goes on', async () => {
  const id = await fx.run({ command: ['sleep', '600'] });
  await fx.waitFor(id, 'running');
  // 256 MiB of output, counting the chunks written so far in a file.
  const producer = `i=0; while [ $i -lt ${CHUNKS} ]; do head -c ${CHUNK} /dev/zero; i=$((i+1)); echo $i > /tmp/n; done`;
  const ws = new WebSocket(execUrl(id, producer), { headers: { authorization: `Bearer ${fx.srv.adminToken}` } });
  let received = 0;
  ws.on('message', (d: Buffer) => (received += d.length));
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  ws.pause();
  try {
    const written = async () => Number((await execOut(id, 'cat /tmp/n 2>/dev/null || echo 0')).trim());
    // Held up: two readings in a row agree, and short of the end.
    let prev = -1;
    const held = await until(
      'the producer is held up',
      async () => {
        const n = await written();
        const same = n > 0 && n === prev;
        prev = n;
        return same ? n : undefined;
      },
      120_000,
    );
    assert.ok(held < CHUNKS / 2, `the process wrote ${held} of ${CHUNKS} chunks with nobody reading`);
    assert.ok(received < (held * CHUNK) / 2, `the paused client took ${received} bytes`);
    ws.resume();
    await until('the producer goes on once the client reads', async () =>
      (await written()) > held ? true : undefined,
    );
  } finally {
    ws.terminate();
  }
});
