// The SQLite store: one connection, and writes group-committed on it.
//
// Writes are group-committed: writes that arrive in the same turn of the event
// loop, or while a commit is under way, run together in one transaction, each
// inside its own savepoint. (SQLite answers synchronously, so a write started
// at once would commit alone before the next request is even read: the group
// starts on the next turn instead.)
// One that fails is rolled back to its savepoint alone; the others commit. A
// write resolves only after the commit that holds it, so an acknowledged write
// is a committed one. Grouping shares the commit and the WAL pages between
// writes, which is most of the cost of a small write on SQLite.
import type { ControlledTransaction } from 'kysely';
import { type CpuTally, currentTally, measured } from '../../lib/cpu-account.ts';
import { type EventBus, InProcessEventBus } from '../event-bus.ts';
import { insertEvents } from '../events.ts';
import type { Database } from '../schema.ts';
import type { Db, EventInput, EventListener, Store, StoredEvent, Trx, WriteContext } from '../store.ts';
import { type OpenOptions, openDatabase } from './db.ts';

/** Opens (creating and migrating as needed) the SQLite store at `opts.file`. */
export async function openSqliteStore(opts: OpenOptions): Promise<Store> {
  const { db, close } = await openDatabase(opts);
  return new SqliteStore(db, close);
}

interface Job {
  fn: (ctx: WriteContext) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** the account of the code that queued it (a controller's pass), charged with its CPU */
  tally: CpuTally | undefined;
}

const MAX_GROUP = 64;

export class SqliteStore implements Store {
  readonly db: Db;
  private readonly bus: EventBus;
  private readonly queue: Job[] = [];
  private draining = false;

  private readonly closeDb: () => Promise<void>;

  constructor(db: Db, closeDb: () => Promise<void>, bus: EventBus = new InProcessEventBus()) {
    this.db = db;
    this.closeDb = closeDb;
    this.bus = bus;
  }

  read<T>(fn: (trx: Trx) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(fn);
  }

  /** Runs `fn` in a transaction with the events it emits. Never call `write` inside `fn`. */
  write<T>(fn: (ctx: WriteContext) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject, tally: currentTally() });
      if (this.draining) return;
      this.draining = true;
      setImmediate(() => void this.drain());
    });
  }

  onEvent(listener: EventListener): () => void {
    return this.bus.subscribe(listener);
  }

  async close(): Promise<void> {
    while (this.draining) await new Promise(r => setImmediate(r));
    await this.closeDb();
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, MAX_GROUP);
        if (group.length === 1) await this.runOne(group[0]!);
        else await this.runGroup(group);
      }
    } finally {
      this.draining = false;
    }
  }

  private publish(rows: StoredEvent[]): void {
    this.bus.publish(rows);
  }

  private async runOne(job: Job): Promise<void> {
    let rows: StoredEvent[] = [];
    try {
      const value = await measured(job.tally, () =>
        this.db.transaction().execute(async trx => {
          const pending: EventInput[] = [];
          const v = await job.fn({ trx, emit: e => pending.push(e) });
          rows = await insertEvents(trx, pending);
          return v;
        }),
      );
      this.publish(rows);
      job.resolve(value);
    } catch (err) {
      job.reject(err);
    }
  }

  private async runGroup(group: Job[]): Promise<void> {
    let trx: ControlledTransaction<Database>;
    try {
      trx = await this.db.startTransaction().execute();
    } catch (err) {
      for (const job of group) job.reject(err);
      return;
    }
    const committed: { job: Job; value: unknown; rows: StoredEvent[] }[] = [];
    const refused: { job: Job; err: unknown }[] = [];
    try {
      for (const [i, job] of group.entries()) {
        const name = `w${i}`;
        await measured(job.tally, async () => {
          const sp = await trx.savepoint(name).execute();
          const pending: EventInput[] = [];
          try {
            const value = await job.fn({ trx: sp, emit: e => pending.push(e) });
            const rows = await insertEvents(sp, pending);
            await sp.releaseSavepoint(name).execute();
            committed.push({ job, value, rows });
          } catch (err) {
            // If even this fails the transaction is unusable: the outer catch
            // rolls everything back and every write of the group is refused.
            await sp.rollbackToSavepoint(name).execute();
            await sp.releaseSavepoint(name).execute();
            refused.push({ job, err });
          }
        });
      }
      await trx.commit().execute();
    } catch (err) {
      await trx
        .rollback()
        .execute()
        .catch(() => undefined);
      for (const { job } of committed) job.reject(err);
      for (const { job, err: own } of refused) job.reject(own);
      for (const job of group.slice(committed.length + refused.length)) job.reject(err);
      return;
    }
    for (const { job, value, rows } of committed) {
      this.publish(rows);
      job.resolve(value);
    }
    for (const { job, err } of refused) job.reject(err);
  }
}
