// Streams between users and workloads (logs, exec) pass through the server,
// which checks the caller, but the workload is on a host the server cannot
// dial. So each agent keeps one control WebSocket open to the server; to open
// a stream the server sends {"type":"open", ...} on it and the agent dials back
// a data WebSocket for that stream alone, which the server then relays. One
// socket per stream keeps flow control per stream and the relay trivial.
import { randomBytes } from 'node:crypto';
import type WebSocket from 'ws';
import { ApiError, type ErrorCode } from '../lib/errors.ts';
import { Channel, parseFrame, parseStatus } from '../lib/stream-frames.ts';
import { messages } from '../lib/ws-messages.ts';
import type { ControlMessage, StreamRequest } from '../model/streams.ts';

/** An open stream from an agent: its socket and the messages after the opening status. */
export interface AgentStream {
  ws: WebSocket;
  messages: AsyncIterable<Buffer>;
}

interface Pending {
  hostId: string;
  accept(ws: WebSocket): void;
}

const OPEN_TIMEOUT_MS = 10_000;
const PING_MS = 20_000;

const knownCodes = new Set<string>(['invalid_request', 'not_found', 'conflict', 'unprocessable', 'unavailable']);

export interface StreamHubOptions {
  /**
   * How long a stream request waits for a host's agent that is not connected
   * (an agent restarting, or reconnecting after a server restart) before it
   * is answered 503.
   */
  agentWaitMs?: number;
}

export class StreamHub {
  private readonly controls = new Map<string, WebSocket>();
  private readonly pending = new Map<string, Pending>();
  /** Stream requests waiting for a host's control socket, by host id. */
  private readonly waiting = new Map<string, Set<() => void>>();
  private readonly agentWaitMs: number;

  constructor(o: StreamHubOptions = {}) {
    this.agentWaitMs = o.agentWaitMs ?? 10_000;
  }

  /** An agent's control socket; the newest one of a host wins. */
  attachControl(hostId: string, ws: WebSocket): void {
    const old = this.controls.get(hostId);
    if (old && old !== ws) old.close(4000, 'replaced by a newer connection');
    this.controls.set(hostId, ws);
    const ping = setInterval(() => ws.ping(), PING_MS);
    ping.unref();
    ws.on('close', () => {
      clearInterval(ping);
      if (this.controls.get(hostId) === ws) this.controls.delete(hostId);
    });
    // Errors end in 'close'; without a listener they would be thrown.
    ws.on('error', () => undefined);
    ws.send(JSON.stringify({ type: 'hello', hostId } satisfies ControlMessage));
    for (const wake of this.waiting.get(hostId) ?? []) wake();
  }

  /** The host's open control socket, waiting until `end` for one to attach. */
  private async control(hostId: string, end: number, signal?: AbortSignal): Promise<WebSocket | undefined> {
    const usable = () => {
      const ws = this.controls.get(hostId);
      return ws && ws.readyState === ws.OPEN ? ws : undefined;
    };
    for (let ws = usable(); ; ws = usable()) {
      if (ws) return ws;
      const left = end - Date.now();
      if (left <= 0 || signal?.aborted) return undefined;
      await new Promise<void>(resolve => {
        const set = this.waiting.get(hostId) ?? new Set<() => void>();
        this.waiting.set(hostId, set);
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          set.delete(done);
          if (set.size === 0 && this.waiting.get(hostId) === set) this.waiting.delete(hostId);
          resolve();
        };
        const timer = setTimeout(done, left);
        signal?.addEventListener('abort', done, { once: true });
        set.add(done);
      });
    }
  }

  connected(hostId: string): boolean {
    return this.controls.has(hostId);
  }

  /**
   * Asks the host's agent for a stream and resolves with the agent's data
   * socket once the agent has said the stream is open; rejects with the
   * agent's reason (an ApiError) otherwise. An agent that is not connected is
   * waited for a bounded time (until `signal` aborts, at most).
   */
  async open(hostId: string, hostName: string, req: StreamRequest, signal?: AbortSignal): Promise<AgentStream> {
    const deadline = Date.now() + this.agentWaitMs;
    for (;;) {
      const control = await this.control(hostId, deadline, signal);
      if (!control) {
        const waited = Math.round(this.agentWaitMs / 1000);
        throw new ApiError(
          'unavailable',
          `the agent of host ${hostName} is not connected (waited ${waited} s); try again when it is`,
        );
      }
      const stream = await this.ask(control, hostId, hostName, req);
      // The control socket closed before the agent dialled back (the agent
      // restarted, or its connection dropped): ask on its next one.
      if (stream !== 'lost') return stream;
    }
  }

  /** One request on one control socket; 'lost' when that socket closes before the agent dials back. */
  private ask(control: WebSocket, hostId: string, hostName: string, req: StreamRequest): Promise<AgentStream | 'lost'> {
    const id = randomBytes(16).toString('hex');
    return new Promise<AgentStream | 'lost'>((resolve, reject) => {
      const timer = setTimeout(() => {
        settle();
        reject(
          new ApiError(
            'unavailable',
            `the agent of host ${hostName} did not open the stream within ${OPEN_TIMEOUT_MS / 1000} s`,
          ),
        );
      }, OPEN_TIMEOUT_MS);
      const lost = () => {
        settle();
        resolve('lost');
      };
      control.once('close', lost);
      const settle = () => {
        clearTimeout(timer);
        control.off('close', lost);
        this.pending.delete(id);
      };
      this.pending.set(id, {
        hostId,
        accept: ws => {
          // Dialled back: the control socket's fate no longer matters.
          control.off('close', lost);
          // The agent's first message says whether the stream opened; the
          // iterator queues whatever follows until the relay reads it.
          const it = messages(ws)[Symbol.asyncIterator]();
          const rest: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => it };
          it.next().then(
            first => {
              if (!this.pending.has(id)) return ws.close();
              settle();
              const f = first.done ? undefined : parseFrame(first.value);
              const status = f?.channel === Channel.status ? parseStatus(f.payload) : {};
              if (status.ok) return resolve({ ws, messages: rest });
              ws.close();
              if (first.done)
                return reject(new ApiError('unavailable', 'the agent closed the stream before it opened'));
              const e = status.error;
              const code = (e && knownCodes.has(e.code) ? e.code : 'unavailable') as ErrorCode;
              reject(new ApiError(code, e?.message ?? 'the agent refused the stream'));
            },
            (err: unknown) => {
              settle();
              reject(new ApiError('unavailable', `the agent's stream failed: ${String(err)}`));
            },
          );
        },
      });
      control.send(JSON.stringify({ type: 'open', id, ...req } satisfies ControlMessage), err => {
        if (err && this.pending.has(id)) lost();
      });
    });
  }

  /** Whether stream `id` waits for this host's agent to dial in. */
  awaits(hostId: string, id: string): boolean {
    return this.pending.get(id)?.hostId === hostId;
  }

  /** The agent's data socket for stream `id`; false when no such stream waits for this host. */
  attachData(hostId: string, id: string, ws: WebSocket): boolean {
    const p = this.pending.get(id);
    if (!p || p.hostId !== hostId) return false;
    p.accept(ws);
    return true;
  }

  closeAll(): void {
    for (const set of this.waiting.values()) for (const wake of set) wake();
    for (const ws of this.controls.values()) ws.close(1001, 'server shutting down');
    this.controls.clear();
  }
}
