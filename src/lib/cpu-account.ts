// CPU time charged to whoever asked for the work: a controller's pass runs in
// a tally's context, and the store charges each write to the tally of the code
// that queued it. A write runs its function inside the store's group commit,
// away from the caller's own async context, and SQLite answers synchronously,
// so the CPU measured around one write's function is that write's alone.
import { AsyncLocalStorage } from 'node:async_hooks';

export interface CpuTally {
  /** microseconds of CPU (user + system) */
  us: number;
}

const context = new AsyncLocalStorage<CpuTally>();

/** Runs `fn` with `tally` as the account its writes are charged to. */
export function chargeTo<T>(tally: CpuTally, fn: () => T): T {
  return context.run(tally, fn);
}

/** The tally the current code charges its writes to, if any. */
export function currentTally(): CpuTally | undefined {
  return context.getStore();
}

/** Adds the CPU `fn` uses until it settles to `tally` (none: runs `fn` unmeasured). */
export async function measured<T>(tally: CpuTally | undefined, fn: () => Promise<T>): Promise<T> {
  if (!tally) return fn();
  const start = process.cpuUsage();
  try {
    return await fn();
  } finally {
    const d = process.cpuUsage(start);
    tally.us += d.user + d.system;
  }
}
