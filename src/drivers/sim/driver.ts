// The simulated driver: an in-process runtime that behaves like a fast,
// deterministic one (workloads start, run, exit with codes, stop politely or
// are killed after their grace, pause, log, answer exec) and holds nothing but
// memory. It exists to test the agent's reconcile loop and to run many hosts
// in one process against a real server (`strata agent --sim N`); an agent
// offers it only when asked to simulate, never on its own.
//
// A workload's behaviour comes from its environment (behaviour.ts). One
// SimRuntime holds the workloads of any number of hosts, like one container
// runtime shared by several agents; its state outlives an agent, so a new
// agent on the same runtime finds its workloads again.
import type { Capabilities } from '../../model/capabilities.ts';
import type { DriverName } from '../../model/schemas.ts';
import { ApiError, conflict } from '../../lib/errors.ts';
import { sleep } from '../../lib/time.ts';
import type { Driver, ExecOptions, ExecSession, InstanceSpec, LogOptions, Observed, OutputChunk } from '../driver.ts';
import { BehaviourError, behaviourOf, type Behaviour } from './behaviour.ts';
import { simConsole, simExec } from './exec.ts';
import { line, Pipe } from './pipe.ts';

/** Exit codes of a workload that honours the polite stop, and of one killed. */
export const POLITE_EXIT = 0;
export const KILLED_EXIT = 137;

interface Run {
  ended: Promise<number>;
  end: (code: number) => void;
}

interface Workload {
  id: string;
  hostId: string;
  kind: DriverName;
  behaviour: Behaviour;
  state: 'running' | 'paused' | 'stopped' | 'failed';
  exitCode: number | null;
  /** The current run (from a start to its exit); a new one per start. */
  run: Run | undefined;
  exitTimer: NodeJS.Timeout | undefined;
  /** When the workload exits by itself, and what was left of that when it was paused. */
  exitDue: number | undefined;
  exitLeft: number | undefined;
  log: OutputChunk[];
  followers: Set<Pipe>;
}

function newRun(): Run {
  let end!: (code: number) => void;
  const ended = new Promise<number>(resolve => (end = resolve));
  return { ended, end };
}

const LOG_LINES = 10_000;

/** Workloads by instance id, shared by the sim drivers of every host in the process. */
export class SimRuntime {
  readonly workloads = new Map<string, Workload>();
}

export interface SimDriverOptions {
  /** The kind of instance this driver runs. */
  kind: DriverName;
  runtime?: SimRuntime;
}

/**
 * A sim driver can do what any kind can (its kind's declaration still decides
 * what the API accepts); console and reboot only where the methods are.
 */
const everything = (machine: boolean): Capabilities => ({
  exec: true,
  pause: true,
  console: machine,
  reboot: machine,
  resize: false,
  healthChecks: ['exec', 'http', 'tcp'],
  diskImageUrls: true,
});

export class SimDriver implements Driver {
  readonly name: DriverName;
  readonly capabilities: Capabilities;
  private readonly runtime: SimRuntime;

  constructor(o: SimDriverOptions, machine = false) {
    this.name = o.kind;
    this.capabilities = everything(machine);
    this.runtime = o.runtime ?? new SimRuntime();
  }

  async probe(): Promise<boolean> {
    return true;
  }

  private find(id: string): Workload | undefined {
    const w = this.runtime.workloads.get(id);
    return w?.kind === this.name ? w : undefined;
  }

  private need(id: string): Workload {
    const w = this.find(id);
    if (!w) throw new ApiError('conflict', 'the instance has no workload on its host (it has not been started there)');
    return w;
  }

  async start(spec: InstanceSpec, progress?: (message: string) => void): Promise<void> {
    const existing = this.find(spec.id);
    if (existing && (existing.state === 'running' || existing.state === 'paused')) return;
    let behaviour: Behaviour;
    try {
      behaviour = behaviourOf(spec);
    } catch (err) {
      if (err instanceof BehaviourError) throw new Error(`simulated start refused: ${err.message}`);
      throw err;
    }
    if (behaviour.startMs > 0) {
      progress?.(`pulling ${spec.image} (simulated)`);
      await sleep(behaviour.startMs);
    }
    if (behaviour.startFail !== undefined) throw new Error(behaviour.startFail);
    const w: Workload = existing ?? {
      id: spec.id,
      hostId: spec.host ?? '',
      kind: this.name,
      behaviour,
      state: 'stopped',
      exitCode: null,
      run: undefined,
      exitTimer: undefined,
      exitDue: undefined,
      exitLeft: undefined,
      log: [],
      followers: new Set(),
    };
    w.behaviour = behaviour;
    this.runtime.workloads.set(spec.id, w);
    this.begin(w);
  }

  /** A new run: running, its log lines written, its own exit armed. */
  private begin(w: Workload): void {
    w.state = 'running';
    w.exitCode = null;
    w.run = newRun();
    for (const text of w.behaviour.log) this.write(w, line('stdout', text));
    this.armExit(w, w.behaviour.exitAfterMs);
  }

  private armExit(w: Workload, ms: number | undefined): void {
    clearTimeout(w.exitTimer);
    w.exitTimer = undefined;
    w.exitDue = undefined;
    if (ms === undefined) return;
    w.exitDue = Date.now() + ms;
    w.exitTimer = setTimeout(() => this.end(w, w.behaviour.exitCode), ms);
    w.exitTimer.unref();
  }

  /** The current run ends with `code`. */
  private end(w: Workload, code: number): void {
    clearTimeout(w.exitTimer);
    w.exitTimer = undefined;
    w.exitDue = undefined;
    w.exitLeft = undefined;
    w.state = code === 0 ? 'stopped' : 'failed';
    w.exitCode = code;
    w.run?.end(code);
  }

  private write(w: Workload, chunk: OutputChunk): void {
    w.log.push(chunk);
    if (w.log.length > LOG_LINES) w.log.shift();
    for (const p of w.followers) p.push(chunk);
  }

  async stop(id: string, graceSeconds: number): Promise<void> {
    const w = this.find(id);
    const run = w?.run;
    if (!w || !run || (w.state !== 'running' && w.state !== 'paused')) return;
    // A frozen process cannot take its signal: thaw it first.
    if (w.state === 'paused') await this.resume(id);
    const graceMs = graceSeconds * 1000;
    const polite = w.behaviour.stopMs <= graceMs;
    const wait = polite ? w.behaviour.stopMs : graceMs;
    const timer = new AbortController();
    await Promise.race([run.ended, sleep(wait, timer.signal)]);
    timer.abort();
    if (w.run === run && w.state === 'running') this.end(w, polite ? POLITE_EXIT : KILLED_EXIT);
  }

  async destroy(id: string): Promise<void> {
    const w = this.find(id);
    if (!w) return;
    if (w.state === 'running' || w.state === 'paused') this.end(w, KILLED_EXIT);
    for (const p of w.followers) p.end();
    this.runtime.workloads.delete(id);
  }

  async inspect(id: string): Promise<Observed> {
    const w = this.find(id);
    if (!w) return { state: 'absent' };
    if (w.state === 'running' || w.state === 'paused') return { state: w.state, address: null, ports: [] };
    if (w.state === 'stopped') return { state: 'stopped', exitCode: w.exitCode };
    const code = w.exitCode ?? 1;
    return {
      state: 'failed',
      exitCode: code,
      message: code === KILLED_EXIT ? 'killed (exit 137): SIGKILL' : `exited with code ${code}`,
    };
  }

  async waitExit(id: string): Promise<number> {
    const w = this.find(id);
    if (!w?.run) throw new Error(`no simulated workload for ${id}`);
    return w.run.ended;
  }

  async list(hostId: string): Promise<string[]> {
    return [...this.runtime.workloads.values()].filter(w => w.hostId === hostId && w.kind === this.name).map(w => w.id);
  }

  async logs(id: string, opts: LogOptions, signal: AbortSignal): Promise<AsyncIterable<OutputChunk>> {
    const w = this.need(id);
    const out = new Pipe();
    const past = opts.tail === undefined ? w.log : opts.tail === 0 ? [] : w.log.slice(-opts.tail);
    for (const c of past) out.push(c);
    const live = opts.follow && (w.state === 'running' || w.state === 'paused') && w.run;
    if (!live) {
      out.end();
      return out;
    }
    w.followers.add(out);
    const stop = () => {
      w.followers.delete(out);
      out.end();
    };
    signal.addEventListener('abort', stop, { once: true });
    void live.ended.then(() => {
      signal.removeEventListener('abort', stop);
      stop();
    });
    return out;
  }

  async pause(id: string): Promise<void> {
    const w = this.find(id);
    if (w?.state !== 'running' && w?.state !== 'paused') throw conflict('the instance is not running');
    if (w.state === 'paused') return;
    w.state = 'paused';
    // A frozen workload's own exit waits for it to thaw.
    if (w.exitDue !== undefined) {
      const left = Math.max(0, w.exitDue - Date.now());
      this.armExit(w, undefined);
      w.exitLeft = left;
    }
  }

  async resume(id: string): Promise<void> {
    const w = this.find(id);
    if (w?.state !== 'paused') return;
    w.state = 'running';
    const left = w.exitLeft;
    w.exitLeft = undefined;
    this.armExit(w, left);
  }

  async exec(id: string, o: ExecOptions): Promise<ExecSession> {
    const w = this.find(id);
    if (w?.state !== 'running') throw conflict('the instance is not running');
    return simExec(o.command);
  }

  /** Ends the current run and begins the next (a machine's reset), keeping the log. */
  protected async rebootInPlace(id: string): Promise<void> {
    const w = this.find(id);
    if (w?.state !== 'running' && w?.state !== 'paused') throw conflict('the instance is not running');
    const run = w.run;
    this.armExit(w, undefined);
    w.exitLeft = undefined;
    this.begin(w);
    run?.end(0);
  }

  protected async openConsole(id: string): Promise<ExecSession> {
    const w = this.find(id);
    if (w?.state !== 'running') throw conflict('the instance is not running');
    return simConsole(id);
  }
}

/** A simulated virtual machine: everything a container does, plus a reboot in place and a serial console. */
export class SimMachineDriver extends SimDriver {
  constructor(runtime?: SimRuntime) {
    super(runtime ? { kind: 'vm', runtime } : { kind: 'vm' }, true);
  }

  reboot(id: string): Promise<void> {
    return this.rebootInPlace(id);
  }

  console(id: string): Promise<ExecSession> {
    return this.openConsole(id);
  }
}

/** The sim drivers of one host, for every kind it simulates, sharing `runtime`. */
export function simDrivers(runtime: SimRuntime = new SimRuntime()): Driver[] {
  return [new SimDriver({ kind: 'container', runtime }), new SimMachineDriver(runtime)];
}
