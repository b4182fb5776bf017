// The one interface every kind of compute implements on a host. The agent's
// reconcile loop drives instances through it; a driver holds no control-plane
// state of its own and must find its workloads again after an agent restart.
import type { Static } from 'typebox';
import type { Assignment } from '../api/agent-schemas.ts';
import type { DriverName } from '../agent/fingerprint.ts';

export type InstanceSpec = Static<typeof Assignment>;

export interface Observed {
  state: 'running' | 'stopped' | 'failed' | 'absent';
  exitCode?: number | null;
  message?: string;
}

export interface Driver {
  readonly name: DriverName;
  /** Whether the driver works on this host; only working drivers are offered. */
  probe(): Promise<boolean>;
  /** Creates (if needed) and starts the instance. */
  start(spec: InstanceSpec): Promise<void>;
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
}
