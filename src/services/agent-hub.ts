// Wakes agents the moment their assignments change. Each host has a version;
// an event that names a host to wake (its `host`, src/model/events.ts) bumps
// it, and long-polls waiting on that host return at once. The boot id makes versions from a previous server process
// differ from every current one, so a restarted server never leaves an agent
// waiting on a stale version.
import { randomBytes } from 'node:crypto';
import type { Store } from '../store/store.ts';

export class AgentHub {
  private readonly bootId = randomBytes(4).toString('hex');
  private readonly versions = new Map<string, number>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private closed = false;

  constructor(store: Store) {
    store.onEvent(e => {
      if (e.host !== null) this.bump(e.host);
    });
  }

  version(hostId: string): string {
    return `${this.bootId}.${this.versions.get(hostId) ?? 0}`;
  }

  bump(hostId: string): void {
    this.versions.set(hostId, (this.versions.get(hostId) ?? 0) + 1);
    const set = this.waiters.get(hostId);
    if (!set) return;
    this.waiters.delete(hostId);
    for (const wake of set) wake();
  }

  /** Long-polls waiting now, across hosts. */
  get waiting(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  /**
   * The server is closing: every waiting long-poll is answered now, and any
   * later one at once, so a shutdown does not wait out the agents' waits.
   */
  close(): void {
    this.closed = true;
    const sets = [...this.waiters.values()];
    this.waiters.clear();
    for (const set of sets) for (const wake of set) wake();
  }

  /** Resolves when the host's version differs from `seen`, after `timeoutMs`, or when the hub closes. */
  wait(hostId: string, seen: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.closed || seen !== this.version(hostId) || timeoutMs <= 0) return Promise.resolve();
    return new Promise(resolve => {
      const set = this.waiters.get(hostId) ?? new Set<() => void>();
      this.waiters.set(hostId, set);
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      set.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
