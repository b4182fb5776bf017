// WebSocket helpers shared by the server, the agent and the CLI: a socket's
// binary messages as an async iterable that pauses the socket when the reader
// falls behind, and a send that waits until the data is handed to the kernel
// when the peer reads slowly. Together they carry backpressure end to end.
import type WebSocket from 'ws';

const HIGH_WATER = 64;
const SEND_HIGH_WATER = 1 << 20;

/** Binary messages until the socket closes; text messages are handed over as buffers too. */
export function messages(ws: WebSocket): AsyncIterable<Buffer> {
  const queue: Buffer[] = [];
  let done = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  ws.on('message', (data: WebSocket.RawData) => {
    queue.push(Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data));
    if (queue.length >= HIGH_WATER) ws.pause();
    notify();
  });
  ws.on('close', () => {
    done = true;
    notify();
  });
  ws.on('error', (err: Error) => {
    failure = err;
    done = true;
    notify();
  });
  return {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const next = queue.shift();
        if (next !== undefined) {
          if (queue.length < HIGH_WATER / 2 && ws.isPaused) ws.resume();
          yield next;
          continue;
        }
        if (done) {
          if (failure) throw failure;
          return;
        }
        await new Promise<void>(r => (wake = r));
      }
    },
  };
}

/** Sends a message; waits for it to be written when much is already queued. */
export function send(ws: WebSocket, data: Buffer | string): Promise<void> {
  if (ws.readyState !== ws.OPEN) return Promise.reject(new Error('the stream is closed'));
  if (ws.bufferedAmount < SEND_HIGH_WATER) {
    ws.send(data);
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => ws.send(data, err => (err ? reject(err) : resolve())));
}

/** http(s)://host/path -> ws(s)://host/path */
export function wsUrl(base: string, path: string): string {
  const u = new URL(path, base.endsWith('/') ? base : `${base}/`);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.toString();
}
