// The agent's side of logs and exec: one control WebSocket to the server,
// kept open (reconnecting with backoff), on which the server asks for streams;
// each stream is a data WebSocket the agent dials back and feeds from the
// instance's driver. See src/api/stream-hub.ts for the server's side.
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { ApiError } from '../lib/errors.ts';
import { Channel, frame, parseFrame, parseStatus, statusFrame, type StreamStatus } from '../lib/stream-frames.ts';
import { messages, send, wsUrl } from '../lib/ws-messages.ts';
import type { ControlMessage, LogsRequest, StreamRequest } from '../model/streams.ts';
import type { Driver, ExecSession } from '../drivers/driver.ts';
import { sleep } from '../lib/time.ts';
import { scope } from './last-resort.ts';

export interface AgentStreamsOptions {
  server: string;
  token: () => string | undefined;
  /** The driver that holds an instance assigned to this host. */
  driverFor: (instanceId: string) => Driver | undefined;
  log: Logger;
}

export class AgentStreams {
  private readonly o: AgentStreamsOptions;
  private readonly open = new Set<WebSocket>();

  constructor(o: AgentStreamsOptions) {
    this.o = o;
  }

  /** Keeps the control socket up until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    let backoff = 250;
    while (!signal.aborted) {
      const started = Date.now();
      try {
        await this.connectOnce(signal);
      } catch (err) {
        if (!signal.aborted) this.o.log.warn({ err: String(err) }, 'stream control connection failed; retrying');
      }
      if (signal.aborted) break;
      // A connection that lived a while resets the backoff.
      backoff = Date.now() - started > 10_000 ? 250 : Math.min(backoff * 2, 5000);
      await sleep(backoff, signal);
    }
    for (const ws of this.open) ws.terminate();
  }

  private connectOnce(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl(this.o.server, 'v1/agent/streams'), { headers: this.headers() });
      const onAbort = () => ws.close(1001, 'agent stopping');
      signal.addEventListener('abort', onAbort, { once: true });
      ws.on('unexpected-response', (_req, res) => {
        reject(new Error(`server answered ${res.statusCode} to the stream control connection`));
        res.resume();
        ws.terminate();
      });
      ws.on('message', (data: WebSocket.RawData) => {
        let msg: ControlMessage;
        try {
          msg = JSON.parse(String(data)) as ControlMessage;
        } catch {
          return;
        }
        if (msg.type === 'open')
          void scope.run({ instance: msg.instance, stream: true }, () => this.serve(msg.id, msg));
      });
      ws.on('open', () => this.o.log.debug('stream control connection open'));
      ws.on('error', err => reject(err));
      ws.on('close', () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  private headers(): Record<string, string> {
    const t = this.o.token();
    return t ? { authorization: `Bearer ${t}` } : {};
  }

  /** Dials the data socket for one stream and runs it. */
  private async serve(id: string, req: StreamRequest): Promise<void> {
    const ws = new WebSocket(wsUrl(this.o.server, `v1/agent/streams/${id}`), { headers: this.headers() });
    this.open.add(ws);
    ws.on('close', () => this.open.delete(ws));
    const input = messages(ws);
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
        ws.once('unexpected-response', (_r, res) => reject(new Error(`server answered ${res.statusCode}`)));
      });
    } catch (err) {
      this.o.log.warn({ err: String(err), stream: id }, 'could not open a stream to the server');
      ws.terminate();
      return;
    }
    const driver = this.o.driverFor(req.instance);
    try {
      if (!driver) throw new ApiError('conflict', 'the instance is not held by this host');
      if (req.op === 'logs') await this.logs(ws, driver, req);
      else if (req.op === 'console') {
        if (!driver.console) throw new ApiError('conflict', 'this kind of instance has no console; use strata exec');
        await this.relay(ws, input, await driver.console(req.instance));
      } else {
        const session = await driver.exec(req.instance, {
          command: req.command,
          tty: req.tty,
          stdin: req.stdin,
          cols: req.cols,
          rows: req.rows,
        });
        await this.relay(ws, input, session);
      }
    } catch (err) {
      const code = err instanceof ApiError ? err.code : 'unavailable';
      const message = err instanceof Error ? err.message : String(err);
      if (ws.readyState === ws.OPEN) ws.send(statusFrame({ error: { code, message } }));
      this.o.log.debug({ err: message, stream: id, op: req.op, instance: req.instance }, 'stream ended with an error');
    } finally {
      ws.close();
    }
  }

  private async logs(ws: WebSocket, driver: Driver, req: LogsRequest): Promise<void> {
    const abort = new AbortController();
    ws.once('close', () => abort.abort());
    const chunks = await driver.logs(req.instance, { follow: req.follow, tail: req.tail }, abort.signal);
    await send(ws, statusFrame({ ok: true }));
    for await (const c of chunks)
      await send(ws, frame(c.stream === 'stdout' ? Channel.stdout : Channel.stderr, c.data));
  }

  /** An interactive session (exec, console) over the data socket, its exit code last. */
  private async relay(ws: WebSocket, input: AsyncIterable<Buffer>, session: ExecSession): Promise<void> {
    ws.once('close', () => session.close());
    await send(ws, statusFrame({ ok: true }));
    const pumpInput = (async () => {
      for await (const msg of input) {
        const f = parseFrame(msg);
        if (!f) continue;
        if (f.channel === Channel.stdin) session.write(f.payload);
        else if (f.channel === Channel.eof) session.closeStdin();
        else if (f.channel === Channel.resize) {
          const size = parseStatus(f.payload) as { cols?: number; rows?: number };
          if (size.cols && size.rows) await session.resize(size.cols, size.rows).catch(() => undefined);
        }
      }
    })().catch(() => undefined);
    for await (const c of session.output)
      await send(ws, frame(c.stream === 'stdout' ? Channel.stdout : Channel.stderr, c.data));
    const status: StreamStatus = { exitCode: await session.exitCode() };
    await send(ws, statusFrame(status));
    // Input may still be open (the caller never closed it); the socket's close ends it.
    void pumpInput;
  }
}
