// The store the services use, whatever database is behind it. Every write goes
// through `write`, which commits the change and the events it emitted in one
// transaction and only then tells subscribers (the event stream, the agent
// watch, the placer, the auth cache): a refused write leaves neither rows nor
// events, and an acknowledged write is a committed one.
//
// Queries are Kysely built from the per-table modules beside this file, kept
// to what SQLite and PostgreSQL share; a backend (sqlite/ today) owns its
// dialect, how it groups commits, and its upkeep (checkpoints).
import type { Kysely, Transaction } from 'kysely';
import type { EventInput, EventType } from '../model/events.ts';
import type { Database, EventRow } from './schema.ts';

/** A handle to run queries on: the database itself, or a transaction. */
export type Db = Kysely<Database>;
export type Trx = Transaction<Database>;

export type { EventInput };

/** An event as subscribers hear it after its commit: the stored row and, not stored, the host to wake. */
export type StoredEvent = EventRow & { type: EventType; host: string | null };

export interface WriteContext {
  trx: Trx;
  emit(event: EventInput): void;
}

export type EventListener = (event: StoredEvent) => void;

export interface Store {
  /** For reads outside a write. */
  readonly db: Db;
  /** Runs `fn` in one read transaction, so its reads see one state. */
  read<T>(fn: (trx: Trx) => Promise<T>): Promise<T>;
  /** Runs `fn` in a transaction with the events it emits; resolves once committed. Never call `write` inside `fn`. */
  write<T>(fn: (ctx: WriteContext) => Promise<T>): Promise<T>;
  /** Hears every committed event, in order; returns the unsubscribe. */
  onEvent(listener: EventListener): () => void;
  /** Waits for queued writes, then closes the database. */
  close(): Promise<void>;
}
