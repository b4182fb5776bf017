// Health checks, run by the agent (Podman's Docker API never runs an image's
// HEALTHCHECK). The rules follow Docker's: a check every interval; a success
// makes the instance healthy at once; `retries` failures in a row make it
// unhealthy; failures inside the start period do not count.
import { connect } from 'node:net';
import type { HealthCheck, HealthOut } from '../model/schemas.ts';
import type { Driver } from '../drivers/driver.ts';

export type Health = HealthOut;

export interface CheckResult {
  ok: boolean;
  output: string;
}

export const initialHealth = (): Health => ({ status: 'starting', failingStreak: 0, changedAt: null, output: '' });

/** The health after one more check result. Pure, so the rules are testable on their own. */
export function nextHealth(
  prev: Health,
  r: CheckResult,
  check: Required<Pick<HealthCheck, 'retries' | 'startPeriodSeconds'>>,
  sinceStartMs: number,
  at: string,
): Health {
  if (r.ok)
    return prev.status === 'healthy' && prev.failingStreak === 0
      ? prev
      : { status: 'healthy', failingStreak: 0, changedAt: at, output: r.output };
  if (sinceStartMs < check.startPeriodSeconds * 1000) return prev;
  const failingStreak = prev.failingStreak + 1;
  const status = failingStreak >= check.retries ? 'unhealthy' : prev.status;
  return { status, failingStreak, changedAt: at, output: r.output };
}

const trim = (s: string) => (s.length > 500 ? `${s.slice(0, 500)}...` : s).trim();

/** Runs one check against a running instance. */
export async function runCheck(
  check: HealthCheck,
  driver: Driver,
  id: string,
  address: string | null | undefined,
): Promise<CheckResult> {
  const timeoutMs = (check.timeoutSeconds ?? 5) * 1000;
  if (check.type === 'exec') return execCheck(driver, id, check.command ?? [], timeoutMs);
  if (!address) return { ok: false, output: 'the instance has no address to check' };
  if (check.type === 'http') return httpCheck(`http://${address}:${check.port}${check.path ?? '/'}`, timeoutMs);
  return tcpCheck(address, check.port ?? 0, timeoutMs);
}

async function execCheck(driver: Driver, id: string, command: string[], timeoutMs: number): Promise<CheckResult> {
  let session: Awaited<ReturnType<Driver['exec']>>;
  try {
    session = await driver.exec(id, { command, tty: false, stdin: false });
  } catch (err) {
    return { ok: false, output: err instanceof Error ? err.message : String(err) };
  }
  let output = '';
  let timer: NodeJS.Timeout | undefined;
  const run = (async () => {
    for await (const c of session.output) if (output.length < 4096) output += c.data.toString('utf8');
    return session.exitCode();
  })();
  const timeout = new Promise<'timeout'>(r => (timer = setTimeout(() => r('timeout'), timeoutMs)));
  try {
    const code = await Promise.race([run, timeout]);
    if (code === 'timeout') {
      session.close();
      return { ok: false, output: `timed out after ${timeoutMs / 1000} s` };
    }
    return { ok: code === 0, output: trim(code === 0 ? output : `exit ${code}: ${output}`) };
  } catch (err) {
    return { ok: false, output: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

async function httpCheck(url: string, timeoutMs: number): Promise<CheckResult> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    await res.body?.cancel();
    const ok = res.status >= 200 && res.status < 400;
    return { ok, output: `GET ${url}: ${res.status}` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `timed out after ${timeoutMs / 1000} s` : (e.cause?.code ?? e.message);
    return { ok: false, output: `GET ${url}: ${why}` };
  }
}

function tcpCheck(host: string, port: number, timeoutMs: number): Promise<CheckResult> {
  return new Promise(resolve => {
    const sock = connect({ host, port });
    const done = (r: CheckResult) => {
      sock.destroy();
      resolve(r);
    };
    sock.setTimeout(timeoutMs, () =>
      done({ ok: false, output: `connect ${host}:${port}: timed out after ${timeoutMs / 1000} s` }),
    );
    sock.once('connect', () => done({ ok: true, output: `connect ${host}:${port}: open` }));
    sock.once('error', (err: Error & { code?: string }) =>
      done({ ok: false, output: `connect ${host}:${port}: ${err.code ?? err.message}` }),
    );
  });
}

/** Checks one instance every interval until stopped; reports each change of its health. */
export class HealthMonitor {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private health: Health;
  /** The health came from the server (the same run, checked before): it is not reported again. */
  private readonly known: boolean;
  private readonly started = Date.now();
  private readonly check: HealthCheck;
  private readonly probe: () => Promise<CheckResult>;
  private readonly report: (h: Health) => Promise<void>;

  /** `known`: the health the server holds for this run of the workload, when checks resume after an agent restart. */
  constructor(
    check: HealthCheck,
    probe: () => Promise<CheckResult>,
    report: (h: Health) => Promise<void>,
    known?: Health | null,
  ) {
    this.check = check;
    this.probe = probe;
    this.report = report;
    this.health = known ?? initialHealth();
    this.known = Boolean(known);
  }

  start(): void {
    if (!this.known) void this.report(this.health);
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), (this.check.intervalSeconds ?? 10) * 1000);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const r = await this.probe();
    if (this.stopped) return;
    const rules = { retries: this.check.retries ?? 3, startPeriodSeconds: this.check.startPeriodSeconds ?? 0 };
    const next = nextHealth(this.health, r, rules, Date.now() - this.started, new Date().toISOString());
    const changed = next !== this.health;
    this.health = next;
    if (changed) await this.report(next).catch(() => undefined);
    this.schedule();
  }
}
