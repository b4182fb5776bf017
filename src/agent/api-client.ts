// The agent's side of the agent protocol (docs/agent-protocol.md).
import type { Static } from 'typebox';
import type { ConductedNodes, StepReport } from '../model/nodes.ts';
import type { Assignments } from '../kinds/schemas.ts';
import type { Fingerprint, ObservedReport, Registered, StatusReportBody } from '../model/agent-protocol.ts';
import type { HeartbeatAck } from '../model/agent-protocol.ts';
import type { Gate } from '../lib/gate.ts';
import { httpRequest, keepAliveAgent } from '../lib/http.ts';
import type { Agent as ConnectionPool } from 'node:http';
import type { InstanceState } from '../model/instance-state.ts';

export class AgentApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Whether a failed request may succeed if made again: the server could not be
 * reached, did not answer in time, was busy, rate-limited or closing. A
 * refusal (a bad request, an illegal transition, an unknown instance) is not.
 */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof AgentApiError)) return true;
  return err.status === 408 || err.status === 429 || err.status >= 500;
}

/** How long a request may take before it is given up (and, for a report, made again). */
export const REQUEST_TIMEOUT_MS = 30_000;

export interface ReportExtra {
  message?: string;
  exitCode?: number | null;
  restart?: boolean;
  observed?: Static<typeof StatusReportBody>['observed'];
}

/** Idle connections are kept this long at most (less if the server says it closes them sooner). */
const KEEP_IDLE_MS = 60_000;

export class AgentApi {
  private readonly base: string;
  token: string | undefined;
  /**
   * Bounds the instance reports in flight, when agents share one. Heartbeats
   * and the assignment watch never wait behind a burst of reports: a host
   * whose heartbeat waited would be taken for dead.
   */
  private readonly gate: Gate | undefined;

  private readonly timeoutMs: number;
  /**
   * Connections kept between calls. With Node's global pool, which closes an
   * idle connection after 5 s, nearly every heartbeat opened a connection, and
   * a fleet's heartbeats waited in the server's accept queue whenever its
   * event loop was busy.
   */
  private readonly pool: ConnectionPool;

  constructor(server: string, token?: string, gate?: Gate, timeoutMs = REQUEST_TIMEOUT_MS) {
    this.base = server.replace(/\/+$/, '');
    this.pool = keepAliveAgent(this.base, KEEP_IDLE_MS);
    this.token = token;
    this.gate = gate;
    this.timeoutMs = timeoutMs;
  }

  /** Closes the kept connections; a call after this opens new ones. */
  close(): void {
    this.pool.destroy();
  }

  private gated<T>(method: string, path: string, body: unknown): Promise<T> {
    return this.gate ? this.gate.run(() => this.call<T>(method, path, body)) : this.call<T>(method, path, body);
  }

  /** `timeoutMs` bounds the whole exchange, so a request the server never answers cannot hold a gate's place forever. */
  private async call<T>(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
    timeoutMs = this.timeoutMs,
  ): Promise<T> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await httpRequest(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      agent: this.pool,
    });
    const text = await res.text();
    const parsed = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) {
      const err = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new AgentApiError(res.status, err?.code ?? 'http_error', err?.message ?? `HTTP ${res.status}`);
    }
    return parsed as T;
  }

  register(joinToken: string, name: string, fp: Fingerprint): Promise<Static<typeof Registered>> {
    return this.call('POST', '/v1/agent/register', { joinToken, name, fingerprint: fp });
  }

  heartbeat(fp?: Fingerprint): Promise<Static<typeof HeartbeatAck>> {
    return this.call('POST', '/v1/agent/heartbeat', fp ? { fingerprint: fp } : {});
  }

  assignments(
    version: string | undefined,
    waitSeconds: number,
    signal?: AbortSignal,
  ): Promise<Static<typeof Assignments>> {
    const q = new URLSearchParams({ waitSeconds: String(waitSeconds) });
    if (version) q.set('version', version);
    // The server holds the answer up to waitSeconds; past that and a margin, the connection is taken for dead.
    return this.call('GET', `/v1/agent/assignments?${q}`, undefined, signal, waitSeconds * 1000 + this.timeoutMs);
  }

  /** The nodes this host conducts (bare metal), waiting until they change like `assignments`. */
  nodes(
    version: string | undefined,
    waitSeconds: number,
    signal?: AbortSignal,
  ): Promise<Static<typeof ConductedNodes>> {
    const q = new URLSearchParams({ waitSeconds: String(waitSeconds) });
    if (version) q.set('version', version);
    return this.call('GET', `/v1/agent/nodes?${q}`, undefined, signal, waitSeconds * 1000 + this.timeoutMs);
  }

  stepReport(id: string, r: StepReport): Promise<unknown> {
    return this.gated('POST', `/v1/agent/nodes/${encodeURIComponent(id)}/step`, r);
  }

  report(id: string, state: InstanceState, extra: ReportExtra = {}): Promise<unknown> {
    return this.gated('POST', `/v1/agent/instances/${encodeURIComponent(id)}/status`, { state, ...extra });
  }

  observe(id: string, observed: Static<typeof ObservedReport>): Promise<unknown> {
    return this.gated('POST', `/v1/agent/instances/${encodeURIComponent(id)}/observed`, observed);
  }
}
