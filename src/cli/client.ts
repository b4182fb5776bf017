// The CLI's HTTP client: JSON requests to the public /v1 API with a bearer
// token, cursor pagination, and the server-sent event stream. Errors come back
// as ApiError (the server's { error: { code, message, details } }) or
// ConnectError (nothing answered), never as raw socket failures.
import type { Static } from 'typebox';
import type WebSocket from 'ws';
import type * as K from '../kinds/schemas.ts';
import type * as S from '../model/schemas.ts';
import { type HttpReply, httpRequest } from '../lib/http.ts';

export type Project = Static<typeof S.Project>;
export type Member = Static<typeof S.Member>;
export type User = Static<typeof S.User>;
export type Token = Static<typeof S.Token>;
export type TokenCreated = Static<typeof S.TokenCreated>;
export type Whoami = Static<typeof S.Whoami>;
export type Host = Static<typeof S.Host>;
export type JoinToken = Static<typeof S.JoinToken>;
export type JoinTokenCreated = Static<typeof S.JoinTokenCreated>;
export type Instance = Static<typeof K.Instance>;
export type InstanceCreate = Static<typeof K.InstanceCreate>;
export type Constraint = Static<typeof S.Constraint>;
export type Deployment = K.DeploymentOut;
export type DeploymentDetail = K.DeploymentDetailOut;
export type Revision = K.RevisionOut;
export type Event = Static<typeof S.Event>;
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** An error answer of the API. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** The server could not be reached at all. */
export class ConnectError extends Error {
  readonly url: string;
  constructor(url: string, reason: string) {
    super(reason);
    this.url = url;
  }
}

export type Query = Record<string, string | number | boolean | string[] | undefined>;

/** A list value repeats its key (?command=sh&command=-c). */
export function withQuery(path: string, query: Query = {}): string {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (Array.isArray(v)) for (const item of v) qs.append(k, item);
    else if (v !== undefined && v !== '') qs.set(k, String(v));
  }
  const s = qs.toString();
  return s ? `${path}?${s}` : path;
}

const enc = encodeURIComponent;
export { enc };

export class Client {
  readonly url: string;
  private readonly token: string;

  constructor(url: string, token: string) {
    this.url = url.replace(/\/+$/, '');
    this.token = token;
  }

  private async send(
    method: string,
    path: string,
    body: unknown,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<HttpReply> {
    const h: Record<string, string> = { authorization: `Bearer ${this.token}`, ...headers };
    let payload: string | undefined;
    if (body !== undefined) {
      h['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    try {
      return await httpRequest(this.url + path, { method, headers: h, body: payload, signal });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw connectError(this.url, err);
    }
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body, { accept: 'application/json' });
    const text = await res.text();
    if (!res.ok) throw errorOf(res, text);
    if (res.status === 204 || text === '') return null as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(
        res.status,
        'bad_response',
        `the server at ${this.url} answered ${method} ${path} with something that is not JSON`,
      );
    }
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', withQuery(path, query));
  }
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }
  put<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }
  patch<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body);
  }
  delete<T = null>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  /** One page, or with all=true every page, following nextCursor. */
  async list<T>(path: string, query: Query, all: boolean): Promise<Page<T>> {
    const items: T[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await this.get<Page<T>>(path, { ...query, cursor });
      items.push(...page.items);
      if (!all || !page.nextCursor) return { items, nextCursor: page.nextCursor };
      cursor = page.nextCursor;
    }
  }

  /**
   * The instance's output from GET /v1/instances/:id/logs, chunk by chunk, until
   * the server ends it (the instance stopped, or no follow) or the signal aborts.
   */
  async logs(
    id: string,
    query: Query,
    onChunk: (c: { stream: 'stdout' | 'stderr'; data: string }) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    let res: HttpReply;
    try {
      res = await this.send(
        'GET',
        withQuery(`/v1/instances/${enc(id)}/logs`, query),
        undefined,
        { accept: 'application/x-ndjson' },
        signal,
      );
    } catch (err) {
      if ((err as Error).name === 'AbortError') return;
      throw err;
    }
    if (!res.ok) throw errorOf(res, await res.text());
    if (!res.body) return;
    const decoder = new TextDecoder();
    let rest = '';
    try {
      for await (const chunk of res.body) {
        const lines = (rest + decoder.decode(chunk, { stream: true })).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) if (line) onChunk(JSON.parse(line) as { stream: 'stdout' | 'stderr'; data: string });
      }
    } catch (err) {
      if ((err as Error).name === 'AbortError' || signal?.aborted) return;
      throw connectError(this.url, err);
    }
  }

  /** Opens a WebSocket route; API errors before the upgrade come back as ApiError. */
  /**
   * Opens a WebSocket and answers it with its messages. The messages are
   * read from the start: the server may send the first ones in the same
   * packet as the handshake, before a reader attached after 'open' would see them.
   */
  async socket(path: string, query: Query): Promise<{ ws: WebSocket; messages: AsyncIterable<Buffer> }> {
    const { default: WebSocket } = await import('ws');
    const { messages, wsUrl } = await import('../lib/ws-messages.ts');
    const url = wsUrl(this.url, withQuery(path, query).replace(/^\//, ''));
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.token}` } });
      const received = messages(ws);
      ws.once('open', () => resolve({ ws, messages: received }));
      ws.once('unexpected-response', (_req, res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          reject(errorOf({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '' }, text));
        });
      });
      ws.once('error', err => reject(connectError(this.url, { cause: err })));
    });
  }

  /**
   * Follows GET /v1/events?follow=true. Calls onOpen once the stream is
   * connected and onEvent for every event; resolves when the server ends the
   * stream or the signal aborts.
   */
  async follow(
    query: Query,
    handlers: { onOpen?: () => void; onEvent: (e: Event) => void },
    signal?: AbortSignal,
  ): Promise<void> {
    const { createParser } = await import('eventsource-parser');
    let res: HttpReply;
    try {
      res = await this.send(
        'GET',
        withQuery('/v1/events', { ...query, follow: true }),
        undefined,
        { accept: 'text/event-stream' },
        signal,
      );
    } catch (err) {
      if ((err as Error).name === 'AbortError') return;
      throw err;
    }
    if (!res.ok) throw errorOf(res, await res.text());
    if (!res.body) return;
    handlers.onOpen?.();
    const parser = createParser({
      onEvent: msg => {
        if (!msg.data) return;
        let e: Event;
        try {
          e = JSON.parse(msg.data) as Event;
        } catch {
          return;
        }
        handlers.onEvent(e);
      },
    });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) parser.feed(decoder.decode(chunk, { stream: true }));
    } catch (err) {
      if ((err as Error).name === 'AbortError' || signal?.aborted) return;
      throw connectError(this.url, err);
    }
  }
}

function errorOf(res: { status: number; statusText: string }, text: string): ApiError {
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; details?: unknown } };
    if (body.error?.message)
      return new ApiError(res.status, body.error.code ?? 'error', body.error.message, body.error.details);
  } catch {
    // not the API's error shape
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiError(res.status, 'http_error', `HTTP ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''}`);
}

/** fetch-style errors carry the socket's error as `cause`; node:http's are that error. */
function connectError(url: string, err: unknown): ConnectError {
  type SocketError = { code?: string; message?: string };
  const cause = (err as { cause?: SocketError }).cause ?? (err as SocketError);
  const code = cause?.code ?? '';
  const reasons: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'host name lookup failed',
    ETIMEDOUT: 'connection timed out',
    UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
    ECONNRESET: 'connection reset',
    EHOSTUNREACH: 'host unreachable',
    UND_ERR_SOCKET: 'connection closed',
  };
  return new ConnectError(url, reasons[code] ?? cause?.message ?? (err as Error).message);
}
