// A QEMU Machine Protocol client on a unix socket: the greeting, capability
// negotiation, commands answered by id, and asynchronous events. QMP speaks
// one JSON object per line.
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  readonly qmpClass: string;
  constructor(qmpClass: string, desc: string) {
    super(desc);
    this.qmpClass = qmpClass;
  }
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

export class Qmp extends EventEmitter<{ greeting: []; event: [QmpEvent]; close: [] }> {
  private readonly sock: Socket;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffer = '';
  private closed = false;

  private constructor(sock: Socket) {
    super();
    this.sock = sock;
  }

  /** Connects and negotiates capabilities; rejects when nothing serves the socket. */
  static async connect(path: string, timeoutMs = 5000): Promise<Qmp> {
    const sock = connect(path);
    const qmp = new Qmp(sock);
    const greeting = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`QMP on ${path}: no greeting within ${timeoutMs} ms`)),
        timeoutMs,
      );
      sock.once('error', err => {
        clearTimeout(timer);
        reject(err);
      });
      qmp.once('greeting', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => qmp.onData(chunk));
    sock.on('close', () => qmp.onClose());
    sock.on('error', () => undefined);
    try {
      await greeting;
      await qmp.execute('qmp_capabilities');
    } catch (err) {
      sock.destroy();
      throw err;
    }
    return qmp;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('QMP connection closed'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  close(): void {
    this.sock.destroy();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if ('QMP' in msg) this.emit('greeting');
      else if ('event' in msg) this.emit('event', msg as unknown as QmpEvent);
      else if (typeof msg.id === 'number') {
        const p = this.pending.get(msg.id);
        if (!p) continue;
        this.pending.delete(msg.id);
        const err = msg.error as { class?: string; desc?: string } | undefined;
        if (err) p.reject(new QmpError(err.class ?? 'GenericError', err.desc ?? 'QMP error'));
        else p.resolve(msg.return);
      }
    }
  }

  private onClose(): void {
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new Error('QMP connection closed'));
    this.pending.clear();
    this.emit('close');
  }
}
