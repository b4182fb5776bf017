// The armed boots of one provisioning network, in memory only: a restarted
// conductor arms again. A network boot is found by the MAC iPXE sends; a node
// armed before its first inspection (no MACs known) takes the first MAC
// nobody knows, and only one such boot is armed at a time, or two new nodes
// booting together could each get the other's task. Every boot, network or
// media, is then reached by its token, which the ramdisk carries in its URL.
import { randomBytes } from 'node:crypto';
import type { BootSession, Hardware, RamdiskTask, TaskResult } from '../types.ts';
import { normalizeMac } from './protocol.ts';

class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (v: T) => void;
  reject!: (e: Error) => void;
  settled = false;
  constructor() {
    this.promise = new Promise<T>((res, rej) => {
      this.resolve = v => {
        this.settled = true;
        res(v);
      };
      this.reject = e => {
        this.settled = true;
        rej(e);
      };
    });
    this.promise.catch(() => undefined); // a close nobody waits on is no unhandled rejection
  }
}

function untilSettled<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      v => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

export class Session implements BootSession {
  readonly nodeId: string;
  readonly token: string;
  /** The ramdisk's base URL (strata.url): the boot server's /ramdisk/TOKEN. */
  readonly url: string;
  readonly task: RamdiskTask;
  readonly via: 'network' | 'media';
  /** The MACs this boot answers to (network boots). */
  readonly macs = new Set<string>();
  /** Armed with no known MAC: it takes the first unknown one. */
  readonly anyMac: boolean;
  closed = false;
  /** Run once when the boot closes, however it closes (its ISO is removed, for one). */
  readonly cleanups: (() => void)[] = [];
  private readonly helloD = new Deferred<Hardware>();
  private readonly doneD = new Deferred<TaskResult>();
  private readonly onClose: (s: Session) => void;

  constructor(init: {
    nodeId: string;
    baseUrl: string;
    task: RamdiskTask;
    via: 'network' | 'media';
    macs: readonly string[];
    onClose: (s: Session) => void;
  }) {
    this.nodeId = init.nodeId;
    this.token = randomBytes(16).toString('hex');
    this.url = `${init.baseUrl}/ramdisk/${this.token}`;
    this.task = init.task;
    this.via = init.via;
    for (const m of init.macs) this.macs.add(m);
    this.anyMac = init.via === 'network' && init.macs.length === 0;
    this.onClose = init.onClose;
  }

  hello(signal: AbortSignal): Promise<Hardware> {
    return untilSettled(this.helloD.promise, signal);
  }

  done(signal: AbortSignal): Promise<TaskResult> {
    return untilSettled(this.doneD.promise, signal);
  }

  /** The first hello counts: a ramdisk that boots again reports the same machine. */
  recordHello(hw: Hardware): void {
    if (!this.helloD.settled) this.helloD.resolve(hw);
  }

  /** The first result counts. */
  recordDone(result: TaskResult): void {
    if (!this.doneD.settled) this.doneD.resolve(result);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const err = new Error(`the boot session of node ${this.nodeId} was closed`);
    if (!this.helloD.settled) this.helloD.reject(err);
    if (!this.doneD.settled) this.doneD.reject(err);
    this.onClose(this);
    for (const c of this.cleanups.splice(0)) c();
  }
}

export class SessionRegistry {
  /** The boot server's URL, set once it listens. */
  baseUrl = '';
  private readonly byToken = new Map<string, Session>();
  private readonly byMac = new Map<string, Session>();
  /** MACs some ramdisk reported: not "unknown" any more. */
  private readonly known = new Set<string>();
  /** The one boot armed with no MACs, and the arms waiting for its place. */
  private anyMacSession: Session | null = null;
  private readonly anyMacWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private shut = false;

  /** Arms a network boot; with no MACs, waits until no other such boot is armed. */
  async armNetwork(nodeId: string, macs: readonly string[], task: RamdiskTask): Promise<Session> {
    const normalized: string[] = [];
    for (const m of macs) {
      const n = normalizeMac(m);
      if (!n) throw new Error(`not a MAC address: ${JSON.stringify(m.slice(0, 40))}`);
      normalized.push(n);
    }
    this.closeNode(nodeId);
    for (const m of normalized) {
      const holder = this.byMac.get(m);
      if (holder && holder.nodeId !== nodeId)
        throw new Error(`MAC ${m} is armed for node ${holder.nodeId}, not ${nodeId}`);
    }
    if (normalized.length === 0) {
      while (this.anyMacSession) {
        await new Promise<void>((resolve, reject) => this.anyMacWaiters.push({ resolve, reject }));
      }
    }
    if (this.shut) throw new Error('the provisioning network is closed');
    // Another arm of this node may have come in while this one waited.
    this.closeNode(nodeId);
    const s = new Session({
      nodeId,
      baseUrl: this.baseUrl,
      task,
      via: 'network',
      macs: normalized,
      onClose: x => this.forget(x),
    });
    this.byToken.set(s.token, s);
    for (const m of normalized) this.byMac.set(m, s);
    if (s.anyMac) this.anyMacSession = s;
    return s;
  }

  armMedia(nodeId: string, task: RamdiskTask): Session {
    if (this.shut) throw new Error('the provisioning network is closed');
    this.closeNode(nodeId);
    const s = new Session({
      nodeId,
      baseUrl: this.baseUrl,
      task,
      via: 'media',
      macs: [],
      onClose: x => this.forget(x),
    });
    this.byToken.set(s.token, s);
    return s;
  }

  /** The armed network boot for a MAC iPXE sent, if any. */
  forMac(rawMac: string): Session | null {
    const mac = normalizeMac(rawMac);
    if (!mac) return null;
    const s = this.byMac.get(mac);
    if (s) return s;
    const any = this.anyMacSession;
    if (any && any.macs.size === 0 && !this.known.has(mac)) {
      any.macs.add(mac);
      this.byMac.set(mac, any);
      return any;
    }
    return null;
  }

  forToken(token: string): Session | null {
    return this.byToken.get(token) ?? null;
  }

  /** A ramdisk's hello: its MACs are known from now on, and lead to its boot. */
  hello(s: Session, hw: Hardware): void {
    for (const n of hw.nics) {
      this.known.add(n.mac);
      if (s.via === 'network' && !this.byMac.has(n.mac)) {
        s.macs.add(n.mac);
        this.byMac.set(n.mac, s);
      }
    }
    s.recordHello(hw);
  }

  sessions(): Session[] {
    return [...this.byToken.values()];
  }

  /** Closes every boot; arms still waiting fail. */
  close(): void {
    this.shut = true;
    for (const s of this.sessions()) s.close();
    for (const w of this.anyMacWaiters.splice(0)) w.reject(new Error('the provisioning network is closed'));
  }

  private closeNode(nodeId: string): void {
    for (const s of this.sessions()) if (s.nodeId === nodeId) s.close();
  }

  private forget(s: Session): void {
    this.byToken.delete(s.token);
    for (const m of s.macs) if (this.byMac.get(m) === s) this.byMac.delete(m);
    if (this.anyMacSession === s) {
      this.anyMacSession = null;
      // One waiter takes the place; the others wait on.
      this.anyMacWaiters.shift()?.resolve();
    }
  }
}
