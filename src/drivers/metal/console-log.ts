// A node's serial console, recorded: the conductor holds the one console
// session a BMC allows (IPMI serial-over-LAN), appends what it prints to a
// file, and reopens it when it drops (a power cycle ends it). `strata logs`
// reads the file; `strata console` joins the live session; waiters watch the
// text for markers (the OS is up, the command's exit code).
import {
  appendFileSync,
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { sleep } from '../../lib/time.ts';
import type { Bmc, ConsoleSession } from './types.ts';

type Waiter = { pattern: RegExp; resolve: (m: RegExpExecArray) => void; from: number };

export class ConsoleLog {
  private session: ConsoleSession | undefined;
  private running: AbortController | undefined;
  private readonly listeners = new Set<(data: Buffer) => void>();
  private readonly waiters = new Set<Waiter>();
  /** The text since the last mark, for waiters (bounded). */
  private text = '';
  private readonly file: string;
  private readonly bmc: () => Bmc;
  /** The instance the record is of; none before a node's first deploy. */
  private ownerId: string | null | undefined;

  constructor(file: string, bmc: () => Bmc) {
    this.file = file;
    this.bmc = bmc;
  }

  /** Keeps a console session open until `stop`, reopening it as it drops. */
  start(): void {
    if (this.running) return;
    const ctl = new AbortController();
    this.running = ctl;
    void this.loop(ctl.signal);
  }

  stop(): void {
    this.running?.abort();
    this.running = undefined;
    this.session?.close();
    this.session = undefined;
  }

  /** Counts the records started: a reader that sees it change reads the new record from its start. */
  generation = 0;

  /**
   * Starts a new record, of instance `owner` (a new deployment): the file and
   * the text waiters see begin empty, so no instance reads what the node
   * printed for another, or while it was cleaned.
   */
  reset(owner: string): void {
    writeFileSync(`${this.file}.owner`, owner);
    writeFileSync(this.file, '');
    this.text = '';
    this.ownerId = owner;
    this.generation++;
  }

  /** Whose record this is (it survives a restart of the conductor). */
  owner(): string | null {
    if (this.ownerId === undefined) {
      try {
        this.ownerId = readFileSync(`${this.file}.owner`, 'utf8');
      } catch {
        this.ownerId = null;
      }
    }
    return this.ownerId;
  }

  /** Resolves with the first match of `pattern` in what the console prints from now on (or since the last reset when `sinceReset`). */
  waitFor(pattern: RegExp, signal: AbortSignal, sinceReset = false): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const w: Waiter = { pattern, resolve, from: sinceReset ? 0 : this.text.length };
      const m = pattern.exec(this.text.slice(w.from));
      if (m) return resolve(m);
      const abort = () => {
        this.waiters.delete(w);
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      if (signal.aborted) return abort();
      signal.addEventListener('abort', abort, { once: true });
      w.resolve = m2 => {
        signal.removeEventListener('abort', abort);
        resolve(m2);
      };
      this.waiters.add(w);
    });
  }

  /** Live output, for `strata console`; returns the unsubscribe function. */
  listen(fn: (data: Buffer) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  write(data: Buffer): void {
    this.session?.write(data);
  }

  /** What the file holds from `offset`, up to 1 MiB. */
  read(offset: number): Buffer {
    if (!existsSync(this.file)) return Buffer.alloc(0);
    const size = statSync(this.file).size;
    if (size <= offset) return Buffer.alloc(0);
    const fd = openSync(this.file, 'r');
    try {
      const buf = Buffer.alloc(Math.min(size - offset, 1 << 20));
      return buf.subarray(0, readSync(fd, buf, 0, buf.length, offset));
    } finally {
      closeSync(fd);
    }
  }

  /** The whole record so far, as text (for exit codes after a restart of the conductor). */
  recorded(): string {
    return this.read(0).toString('utf8');
  }

  private take(data: Buffer): void {
    appendFileSync(this.file, data);
    // Waiters match on text; keep the last 256 KiB, which holds any marker's line.
    this.text += data.toString('utf8');
    if (this.text.length > 1 << 18) {
      const cut = this.text.length - (1 << 17);
      this.text = this.text.slice(cut);
      for (const w of this.waiters) w.from = Math.max(0, w.from - cut);
    }
    for (const w of [...this.waiters]) {
      const m = w.pattern.exec(this.text.slice(w.from));
      if (m) {
        this.waiters.delete(w);
        w.resolve(m);
      }
    }
    for (const l of this.listeners) l(data);
  }

  private async loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        const s = await this.bmc().openConsole();
        if (signal.aborted) {
          s.close();
          return;
        }
        this.session = s;
        for await (const chunk of s.output) this.take(chunk);
      } catch {
        // No console now (the machine is off, the BMC busy): try again shortly.
      } finally {
        this.session = undefined;
      }
      await sleep(500, signal).catch(() => undefined);
    }
  }
}
