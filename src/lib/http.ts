// One HTTP request with node:http (node:https for https URLs), for the CLI's
// client and the agent's. Not fetch: Node loads and sets up fetch's
// implementation (undici) on the first call, about 45 ms here, most of what a
// quick command would cost; and each of its connections carries a parser of
// its own (a WebAssembly instance, about 300 KB), which a process holding a
// long-poll per simulated host pays a thousand times.
import type { Agent, IncomingMessage, RequestOptions } from 'node:http';

export interface HttpReply {
  status: number;
  statusText: string;
  ok: boolean;
  /** the body as it arrives; an error while reading carries the socket's code */
  body: AsyncIterable<Uint8Array>;
  text(): Promise<string>;
}

export interface HttpRequest {
  method: string;
  headers: Record<string, string>;
  body?: string | undefined;
  signal?: AbortSignal | undefined;
  /** https: accept a certificate that does not verify (a BMC's self-signed one, when the user says so). */
  insecure?: boolean | undefined;
  /** The connection pool to use; Node's global one (which closes idle connections after 5 s) if not given. */
  agent?: Agent | undefined;
}

/**
 * A pool that keeps idle connections to one server for as long as the server
 * says it keeps them (its Keep-Alive hint), at most `idleMs`: for a client
 * that calls every few seconds, as an agent's heartbeat does, so that each
 * call does not open a connection of its own.
 */
export function keepAliveAgent(url: string, idleMs: number): Agent {
  const https = new URL(url).protocol === 'https:';
  const { Agent: Pool } = process.getBuiltinModule(https ? 'node:https' : 'node:http');
  return new Pool({ keepAlive: true, timeout: idleMs });
}

/** Resolves once the response head arrives; rejects with the socket's error (err.code) or an AbortError. */
export async function httpRequest(url: string, req: HttpRequest): Promise<HttpReply> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`Failed to parse URL from ${url}`);
  }
  // Not import(): an ES import of node:http reads every export, and its
  // WebSocket ones load undici, the very cost this module avoids.
  const { request } = process.getBuiltinModule(u.protocol === 'https:' ? 'node:https' : 'node:http');
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw Object.assign(new Error(`unsupported protocol ${u.protocol}`), { code: 'ERR_INVALID_PROTOCOL' });
  const headers: Record<string, string | number> = { ...req.headers };
  if (req.body !== undefined) headers['content-length'] = Buffer.byteLength(req.body);
  const opts: RequestOptions = { method: req.method, headers };
  if (req.signal) opts.signal = req.signal;
  if (req.agent) opts.agent = req.agent;
  if (req.insecure) (opts as { rejectUnauthorized?: boolean }).rejectUnauthorized = false;
  return new Promise((resolve, reject) => {
    const r = request(u, opts, (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      resolve({
        status,
        statusText: res.statusMessage ?? '',
        ok: status >= 200 && status < 300,
        body: res,
        text: async () => {
          let s = '';
          res.setEncoding('utf8');
          for await (const chunk of res) s += chunk as string;
          return s;
        },
      });
    });
    r.on('error', reject);
    r.end(req.body);
  });
}
