// The container runtime's API service, started and watched by the agent when
// nothing answers on its socket: `podman system service` from Debian's podman
// package. It runs in its own session with its own log, so stopping or killing
// the agent leaves it (and the containers, held by conmon) running; a service
// the agent did not start is never touched.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync, rmSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { sleep } from '../lib/time.ts';

export interface RuntimeServiceOptions {
  socketPath: string;
  /** Where the service runs (conmon writes files into its working directory) and logs. */
  stateDir: string;
  log: Logger;
  /** The program and its arguments before the socket URL. */
  command?: string[];
  /** How long to wait for a fresh service to answer. */
  startTimeoutMs?: number;
}

/** Docker API `_ping` on a unix socket: true when something answers OK. */
export function pingSocket(socketPath: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** Delay before the n-th consecutive restart: 1 s, 2 s, 4 s ... at most 30 s. */
export function restartDelayMs(attempt: number): number {
  return Math.min(1000 * 2 ** Math.max(0, attempt - 1), 30_000);
}

export function serviceCommand(o: Pick<RuntimeServiceOptions, 'command' | 'socketPath'>): string[] {
  return [...(o.command ?? ['podman', 'system', 'service', '--time=0']), `unix://${o.socketPath}`];
}

export class RuntimeService {
  private readonly o: RuntimeServiceOptions;
  /** The pid of the service this agent started, if any. */
  pid: number | undefined;
  private supervising: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(o: RuntimeServiceOptions) {
    this.o = o;
  }

  /**
   * Makes sure the API answers: leaves an answering socket alone (answers
   * false: not ours), otherwise starts the service and waits for it.
   */
  async ensure(): Promise<boolean> {
    if (await pingSocket(this.o.socketPath)) return false;
    await this.startOnce();
    return true;
  }

  private async startOnce(): Promise<void> {
    const cmd = serviceCommand(this.o);
    mkdirSync(this.o.stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(dirname(this.o.socketPath), { recursive: true });
    // A stale socket file from a dead service would make the new one fail to bind.
    if (existsSync(this.o.socketPath)) rmSync(this.o.socketPath, { force: true });
    const logFd = openSync(join(this.o.stateDir, 'runtime-service.log'), 'a');
    let child;
    try {
      child = spawn(cmd[0]!, cmd.slice(1), { cwd: this.o.stateDir, detached: true, stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    child.unref();
    this.pid = child.pid;
    this.o.log.info({ command: cmd.join(' '), pid: child.pid }, 'no container runtime answered; started one');
    const deadline = Date.now() + (this.o.startTimeoutMs ?? 15_000);
    while (Date.now() < deadline) {
      const failed = await Promise.race([spawnError, sleep(100).then(() => undefined)]);
      if (failed) throw new Error(`could not start ${cmd[0]}: ${failed.message}`);
      if (child.exitCode !== null) throw new Error(`${cmd.join(' ')} exited with ${child.exitCode}; see ${join(this.o.stateDir, 'runtime-service.log')}`);
      if (await pingSocket(this.o.socketPath, 500)) return;
    }
    throw new Error(`${cmd.join(' ')} did not answer on ${this.o.socketPath}; see ${join(this.o.stateDir, 'runtime-service.log')}`);
  }

  /** Watches the socket; starts the service again (with backoff) when it stops answering. */
  supervise(intervalMs = 5000): void {
    const signal = this.stopping.signal;
    this.supervising ??= (async () => {
      let failures = 0;
      while (!signal.aborted) {
        await sleep(failures === 0 ? intervalMs : restartDelayMs(failures), signal);
        if (signal.aborted) break;
        if (await pingSocket(this.o.socketPath)) {
          failures = 0;
          continue;
        }
        failures++;
        this.o.log.warn({ socket: this.o.socketPath, attempt: failures }, 'the container runtime stopped answering; starting it again');
        await this.startOnce().then(
          () => (failures = 0),
          (err: unknown) => this.o.log.error({ err: String(err) }, 'starting the container runtime failed'),
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
