// The store: a Kysely handle plus the event log. Every write goes through
// `write`, which commits the change and its events in one transaction and then
// tells in-process subscribers (the event stream, the agent watch, the scheduler).
import { EventEmitter } from 'node:events';
import type { Transaction } from 'kysely';
import { now } from '../lib/time.ts';
import type { Db } from './db.ts';
import type { Database, EventRow } from './schema.ts';

export type Trx = Transaction<Database>;

export interface EventInput {
  type: string;
  projectId: string | null;
  resourceType: string;
  resourceId: string;
  actor: string;
  data?: Record<string, unknown>;
}

export interface WriteContext {
  trx: Trx;
  emit(event: EventInput): void;
}

export class Store {
  readonly db: Db;
  private readonly bus = new EventEmitter();

  constructor(db: Db) {
    this.db = db;
    this.bus.setMaxListeners(0);
  }

  async write<T>(fn: (ctx: WriteContext) => Promise<T>): Promise<T> {
    const pending: EventInput[] = [];
    let rows: EventRow[] = [];
    const result = await this.db.transaction().execute(async (trx) => {
      const value = await fn({ trx, emit: (e) => pending.push(e) });
      if (pending.length > 0) {
        const at = now();
        rows = await trx
          .insertInto('events')
          .values(
            pending.map((e) => ({
              at,
              project_id: e.projectId,
              type: e.type,
              resource_type: e.resourceType,
              resource_id: e.resourceId,
              actor: e.actor,
              data: JSON.stringify(e.data ?? {}),
            })),
          )
          .returningAll()
          .execute();
      }
      return value;
    });
    for (const row of rows) this.bus.emit('event', row);
    return result;
  }

  onEvent(listener: (event: EventRow) => void): () => void {
    this.bus.on('event', listener);
    return () => this.bus.off('event', listener);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
