// The container runtime's API service, started and watched by the agent when
// nothing answers on its socket: `podman system service` from Debian's podman
// package. It runs in its own session with its own log, so stopping or killing
// the agent leaves it (and the containers, held by conmon) running.
//
// Ownership: the agent manages only a service it started (or, after its own
// restart, the one it started before: its pid is in STATE/service.pid and its
// command line matches). A socket something else serves (the setup's service,
// Docker) is never watched, replaced or removed, even when it is slow.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { sleep } from '../lib/time.ts';

export interface RuntimeServiceOptions {
  socketPath: string;
  /** Where the service runs (conmon writes files into its working directory), logs and keeps its pid. */
  stateDir: string;
  log: Logger;
  /** The program and its arguments before the socket URL. */
  command?: string[];
  /** How long to wait for a fresh service to answer. */
  startTimeoutMs?: number;
  /** How long one ping may take before the service counts as silent. */
  pingTimeoutMs?: number;
}

/**
 * What is on a Docker API socket: `answers` (GET /_ping is 200), `silent`
 * (something listens but does not answer in time, or answers an error), or
 * `absent` (no socket file, or nobody listens on it: a dead service's leftover).
 */
export type SocketState = 'answers' | 'silent' | 'absent';

export function probeSocket(socketPath: string, timeoutMs = 2000): Promise<SocketState> {
  return new Promise(resolve => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: timeoutMs }, res => {
      res.resume();
      resolve(res.statusCode === 200 ? 'answers' : 'silent');
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'absent' : 'silent'),
    );
    req.end();
  });
}

/** Docker API `_ping` on a unix socket: true when something answers OK. */
export async function pingSocket(socketPath: string, timeoutMs = 2000): Promise<boolean> {
  return (await probeSocket(socketPath, timeoutMs)) === 'answers';
}

/** Delay before the n-th consecutive restart: 1 s, 2 s, 4 s ... at most 30 s. */
export function restartDelayMs(attempt: number): number {
  return Math.min(1000 * 2 ** Math.max(0, attempt - 1), 30_000);
}

export function serviceCommand(o: Pick<RuntimeServiceOptions, 'command' | 'socketPath'>): string[] {
  return [...(o.command ?? ['podman', 'system', 'service', '--time=0']), `unix://${o.socketPath}`];
}

/** Whether process `pid` is alive and runs exactly `cmd` (a zombie's command line is empty). */
export function runsCommand(pid: number, cmd: string[]): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === `${cmd.join('\0')}\0`;
  } catch {
    return false;
  }
}

/** Consecutive checks our own live service may stay silent before it is taken for hung and replaced. */
const HUNG_CHECKS = 3;

export class RuntimeService {
  private readonly o: RuntimeServiceOptions;
  private readonly cmd: string[];
  private readonly pidFile: string;
  private readonly logFile: string;
  /** The pid of the service this agent manages (started or adopted), if any. */
  pid: number | undefined;
  private supervising: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(o: RuntimeServiceOptions) {
    this.o = o;
    this.cmd = serviceCommand(o);
    this.pidFile = join(o.stateDir, 'service.pid');
    this.logFile = join(o.stateDir, 'runtime-service.log');
  }

  /** True while this agent manages the service on the socket. */
  get owned(): boolean {
    return this.pid !== undefined;
  }

  /**
   * Makes sure the API answers. Answers true when the service is this
   * agent's (started now, or started by it before and adopted), false when
   * something else serves the socket (left alone, never supervised). Throws
   * when no service could be made to answer.
   */
  async ensure(): Promise<boolean> {
    const previous = this.previousPid();
    const state = await probeSocket(this.o.socketPath, this.o.pingTimeoutMs);
    if (state === 'answers') {
      if (previous !== undefined) {
        this.pid = previous;
        this.o.log.info(
          { socket: this.o.socketPath, servicePid: previous },
          'the container runtime this agent started before answers; watching it again',
        );
        return true;
      }
      this.o.log.info({ socket: this.o.socketPath }, 'a container runtime answers; not managed by this agent');
      return false;
    }
    if (state === 'silent') {
      // Something listens: only a service of our own may be replaced.
      if (previous === undefined)
        throw new Error(
          `something listens on ${this.o.socketPath} but does not answer the Docker API; not starting another service there`,
        );
      this.o.log.warn(
        { servicePid: previous },
        'the container runtime this agent started does not answer; replacing it',
      );
      this.kill(previous);
    }
    await this.startOnce();
    return true;
  }

  /** The service a previous run of this agent started, if it still runs. */
  private previousPid(): number | undefined {
    let pid: number;
    try {
      pid = Number.parseInt(readFileSync(this.pidFile, 'utf8'), 10);
    } catch {
      return undefined;
    }
    return Number.isInteger(pid) && pid > 0 && runsCommand(pid, this.cmd) ? pid : undefined;
  }

  private alive(): boolean {
    return this.pid !== undefined && runsCommand(this.pid, this.cmd);
  }

  private kill(pid: number): void {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  private async startOnce(): Promise<void> {
    const cmd = this.cmd;
    mkdirSync(this.o.stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(dirname(this.o.socketPath), { recursive: true });
    // Only a leftover nobody listens on is removed: the new service could not bind it.
    if ((await probeSocket(this.o.socketPath, 500)) !== 'absent')
      throw new Error(`${this.o.socketPath} is served by another process; not starting a service there`);
    rmSync(this.o.socketPath, { force: true });
    const logFd = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(cmd[0]!, cmd.slice(1), { cwd: this.o.stateDir, detached: true, stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    const spawnError = new Promise<NodeJS.ErrnoException>(resolve => child.once('error', resolve));
    child.unref();
    if (child.pid !== undefined) {
      this.pid = child.pid;
      writeFileSync(this.pidFile, `${child.pid}\n`);
      this.o.log.info(
        { command: cmd.join(' '), servicePid: child.pid, log: this.logFile },
        'no container runtime answered; started one',
      );
    }
    const deadline = Date.now() + (this.o.startTimeoutMs ?? 10_000);
    while (Date.now() < deadline) {
      const failed = await Promise.race([spawnError, sleep(100).then(() => undefined)]);
      if (failed) {
        throw new Error(
          failed.code === 'ENOENT'
            ? `${cmd[0]} is not installed (not found on PATH): cannot start a container runtime`
            : `could not start ${cmd[0]}: ${failed.message}`,
        );
      }
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`${cmd.join(' ')} exited (${child.exitCode ?? child.signalCode}); see ${this.logFile}`);
      if (await pingSocket(this.o.socketPath, 500)) return;
      if (this.stopping.signal.aborted) return;
    }
    // It is ours and useless: do not leave it behind.
    if (child.pid !== undefined) this.kill(child.pid);
    throw new Error(
      `${cmd.join(' ')} did not answer on ${this.o.socketPath} within ${(this.o.startTimeoutMs ?? 10_000) / 1000} s; see ${this.logFile}`,
    );
  }

  /**
   * Watches the service this agent manages (nothing when it manages none):
   * starts it again, with backoff, when it dies, and replaces it when it
   * lives but stays silent for several checks in a row.
   */
  supervise(intervalMs = 5000): void {
    if (!this.owned) return;
    const signal = this.stopping.signal;
    this.supervising ??= (async () => {
      let failures = 0;
      let silent = 0;
      while (!signal.aborted) {
        await sleep(failures === 0 ? intervalMs : restartDelayMs(failures), signal);
        if (signal.aborted) break;
        const state = await probeSocket(this.o.socketPath, this.o.pingTimeoutMs);
        if (state === 'answers') {
          failures = silent = 0;
          continue;
        }
        if (this.alive()) {
          if (++silent < HUNG_CHECKS) {
            this.o.log.warn(
              { socket: this.o.socketPath, servicePid: this.pid, checks: silent },
              'the container runtime does not answer; waiting',
            );
            continue;
          }
          this.o.log.warn(
            { socket: this.o.socketPath, servicePid: this.pid },
            'the container runtime hangs; killing it',
          );
          this.kill(this.pid!);
          await sleep(200);
        } else if (state === 'silent') {
          // Our service died and another process now listens there: it is not ours to replace.
          this.o.log.warn(
            { socket: this.o.socketPath },
            'another process now serves the socket; no longer managing it',
          );
          this.pid = undefined;
          break;
        }
        silent = 0;
        failures++;
        this.o.log.warn(
          { socket: this.o.socketPath, attempt: failures },
          'the container runtime stopped; starting it again',
        );
        await this.startOnce().then(
          () => {
            failures = 0;
          },
          (err: unknown) =>
            this.o.log.error(
              { err: err instanceof Error ? err.message : String(err), retryInMs: restartDelayMs(failures) },
              'starting the container runtime failed',
            ),
        );
      }
    })();
  }

  /** Stops watching; the service itself keeps running. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.supervising;
  }
}
