// The one interface every kind of compute implements on a host. The agent's
// reconcile loop drives instances through it; a driver holds no control-plane
// state of its own and must find its workloads again after an agent restart.
import type { SharedAssignment } from '../model/agent-protocol.ts';
import type { DriverName } from '../model/schemas.ts';
import type { Capabilities } from '../model/capabilities.ts';
import type { ConductedNode, StepReport } from '../model/nodes.ts';

/**
 * An assignment as a driver reads it: the fields every kind has, and `F`, the
 * fields of the driver's own kind (an assignment carries every kind's).
 */
export type InstanceSpec<F extends object = object> = SharedAssignment & F;

export interface PortBinding {
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIp: string;
  hostPort: number;
}

export interface Observed {
  state: 'running' | 'paused' | 'stopped' | 'failed' | 'absent';
  exitCode?: number | null;
  message?: string;
  /** Where the host reaches the instance (its address on the host's bridge). */
  address?: string | null;
  /** Ports published on the host, with the host port actually bound. */
  ports?: PortBinding[];
  /** VMs: the hypervisor's accelerator (kvm, or tcg emulation). */
  accelerator?: string;
}

export interface OutputChunk {
  stream: 'stdout' | 'stderr';
  data: Buffer;
}

export interface LogOptions {
  follow: boolean;
  /** Only the last N lines; all when absent. */
  tail?: number | undefined;
}

export interface ExecOptions {
  command: string[];
  tty: boolean;
  stdin: boolean;
  env?: Record<string, string> | undefined;
  cols?: number | undefined;
  rows?: number | undefined;
}

/** A process running inside an instance, with its standard streams. */
export interface ExecSession {
  /** Ends when the process has closed its output. */
  output: AsyncIterable<OutputChunk>;
  write(data: Buffer): void;
  closeStdin(): void;
  resize(cols: number, rows: number): Promise<void>;
  /** The exit code, once the output has ended. */
  exitCode(): Promise<number>;
  /** Stops relaying (the caller went away). */
  close(): void;
}

export interface Driver {
  readonly name: DriverName;
  /**
   * What it can do beyond the lifecycle, declared beside it
   * (`capabilities.ts`); its kind (src/kinds/) declares the same, which the
   * agent checks when it makes its drivers. `console` and `reboot` say
   * whether those methods are there.
   */
  readonly capabilities: Capabilities;
  /** Whether the driver works on this host; only working drivers are offered. */
  probe(): Promise<boolean>;
  /** Creates (if needed) and starts the instance; long steps (an image pull) say how far they are. */
  start(spec: InstanceSpec, progress?: (message: string) => void): Promise<void>;
  /** Stops the instance: a polite signal, then force after `graceSeconds`. */
  stop(id: string, graceSeconds: number): Promise<void>;
  /** Removes the instance and everything the driver made for it. */
  destroy(id: string): Promise<void>;
  /** What the driver sees of the instance now. */
  inspect(id: string): Promise<Observed>;
  /** Resolves with the exit code when a running instance ends. */
  waitExit(id: string): Promise<number>;
  /**
   * Ids of every instance the driver holds for this host (for re-attach and
   * clean-up). Several agents may share one runtime: each sees only its own.
   */
  list(hostId: string): Promise<string[]>;
  /**
   * The instance's output so far, and what follows while `follow` and the
   * signal allow. Rejects (before any output) when there is nothing to read.
   */
  logs(id: string, opts: LogOptions, signal: AbortSignal): Promise<AsyncIterable<OutputChunk>>;
  /** Freezes a running instance in place, and thaws it. */
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** Reboots a running machine in place (VMs); drivers without it are restarted by stop and start. */
  reboot?(id: string): Promise<void>;
  /** Attaches to the machine's console (VMs: the serial port); its exit code is 0. */
  console?(id: string): Promise<ExecSession>;
  /** Runs a process inside a running instance. */
  exec(id: string, opts: ExecOptions): Promise<ExecSession>;
  /** Bare metal: the nodes this host conducts, as the server sees them now, and where step reports go. */
  conduct?(nodes: readonly ConductedNode[], report: (nodeId: string, r: StepReport) => Promise<void>): void;
  /** Lets go of what the driver holds open in this process (sessions, servers); workloads keep running. */
  close?(): void;
}
