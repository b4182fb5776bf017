import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Client } from './client.ts';

/** An unmasked server-to-client WebSocket frame (RFC 6455 section 5.2), payload under 126 bytes. */
const wsFrame = (opcode: number, payload: Buffer) =>
  Buffer.concat([Buffer.from([0x80 | opcode, payload.length]), payload]);

test('a socket hands over the messages a server sends in the handshake packet', async () => {
  // A server whose first frames travel in the same write as its 101 answer, as
  // a busy client reads them: they arrive before 'open' is even emitted.
  const http = createServer();
  http.on('upgrade', (req, socket) => {
    const accept = createHash('sha1')
      .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    const handshake = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
    const frames = [0, 1, 2].map(i => wsFrame(0x2, Buffer.from(`frame ${i}`)));
    socket.end(Buffer.concat([Buffer.from(handshake), ...frames, wsFrame(0x8, Buffer.from([0x03, 0xe8]))]));
  });
  await new Promise<void>(r => http.listen(0, '127.0.0.1', r));
  const client = new Client(`http://127.0.0.1:${(http.address() as AddressInfo).port}`, 'token');
  try {
    const { messages } = await client.socket('/v1/stream', {});
    const got: string[] = [];
    for await (const m of messages) got.push(m.toString());
    assert.deepEqual(got, ['frame 0', 'frame 1', 'frame 2']);
  } finally {
    http.close();
  }
});
