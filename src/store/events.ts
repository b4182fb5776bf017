// The event log: an append-only table with a strictly increasing `seq`.
import { now } from '../lib/time.ts';
import type { EventRow } from './schema.ts';
import type { Db, EventInput, StoredEvent, Trx } from './store.ts';

/** Appends the events of one write, in the write's own transaction. */
/** Rows of one INSERT: SQLite takes at most 32,766 variables a statement, and an event row has 7. */
const ROWS_PER_INSERT = 1000;

export async function insertEvents(trx: Trx, pending: readonly EventInput[]): Promise<StoredEvent[]> {
  if (pending.length === 0) return [];
  const at = now();
  const rows: EventRow[] = [];
  for (let i = 0; i < pending.length; i += ROWS_PER_INSERT) {
    const part = await trx
      .insertInto('events')
      .values(
        pending.slice(i, i + ROWS_PER_INSERT).map(e => ({
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
    rows.push(...part);
  }
  // Sequence numbers follow the order of the values; RETURNING's order is not promised.
  rows.sort((a, b) => a.seq - b.seq);
  return rows.map((row, i) => ({ ...row, type: pending[i]!.type, host: pending[i]!.host ?? null }));
}

/** Up to `limit` events after `since`, in order: of one project, of `projects` ('all': any), of one resource. */
export async function readEvents(
  db: Db,
  o: { since: number; limit: number; projects: string[] | 'all'; resource: string | undefined },
): Promise<EventRow[]> {
  let q = db.selectFrom('events').selectAll().where('seq', '>', o.since).orderBy('seq').limit(o.limit);
  if (o.projects !== 'all') q = q.where('project_id', 'in', o.projects);
  if (o.resource !== undefined) q = q.where('resource_id', '=', o.resource);
  return q.execute();
}

/** The newest event's seq, 0 when there is none. */
export async function lastSeq(db: Db): Promise<number> {
  const row = await db
    .selectFrom('events')
    .select(eb => eb.fn.max('seq').as('seq'))
    .executeTakeFirst();
  return Number(row?.seq ?? 0);
}

/** Whether an event of a type other than `except` came after `seq` (in a transaction: its own writes too). */
export async function anyEventSince(db: Db, seq: number, except: readonly string[]): Promise<boolean> {
  const row = await db
    .selectFrom('events')
    .select('seq')
    .where('seq', '>', seq)
    .where('type', 'not in', except)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}
