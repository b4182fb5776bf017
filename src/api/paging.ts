// Cursor pagination and label selectors, shared by every list route.
// Lists are ordered by id (ULIDs: creation order), and a cursor is the last id
// of the previous page, opaque to clients.
import { sql, type Expression, type ExpressionBuilder, type SqlBool } from 'kysely';
import { invalid } from '../lib/errors.ts';
import type { Database } from '../store/schema.ts';

export function encodeCursor(lastId: string): string {
  return Buffer.from(JSON.stringify({ after: lastId })).toString('base64url');
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (parsed && typeof parsed === 'object' && 'after' in parsed && typeof parsed.after === 'string') {
      return parsed.after;
    }
  } catch {
    // falls through to the error below
  }
  throw invalid('cursor is not one this server issued', { cursor });
}

/** Fetch limit+1 rows, return a page and the cursor of the next one. */
/** The most a page of a list answers, whatever its limit: large items make shorter pages. */
export const PAGE_BYTES = 8 * 1024 * 1024;

/**
 * One page of `rows` (fetched with limit + 1): at most `limit` items and, when
 * `sizeOf` tells each item's size, at most PAGE_BYTES of them (always one).
 */
export function pageOf<T extends { id: string }>(
  rows: T[],
  limit: number,
  sizeOf?: (row: T) => number,
): { rows: T[]; nextCursor: string | null } {
  let n = Math.min(rows.length, limit);
  if (sizeOf) {
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      bytes += sizeOf(rows[i]!);
      if (bytes > PAGE_BYTES && i > 0) {
        n = i;
        break;
      }
    }
  }
  if (n === rows.length) return { rows, nextCursor: null };
  const page = rows.slice(0, n);
  return { rows: page, nextCursor: encodeCursor(page[page.length - 1]!.id) };
}

export type LabelTerm = { key: string; op: '=' | '!=' | 'exists'; value?: string };

export function parseSelector(selector: string | undefined): LabelTerm[] {
  if (!selector) return [];
  return selector.split(',').map(raw => {
    const term = raw.trim();
    const m = /^([A-Za-z0-9._/-]+)(?:\s*(==|!=|=)\s*([^=!]*))?$/.exec(term);
    if (!m?.[1])
      throw invalid(`label selector term ${JSON.stringify(term)} is not k=v, k!=v or k`, { labels: selector });
    if (!m[2]) return { key: m[1], op: 'exists' };
    return { key: m[1], op: m[2] === '!=' ? '!=' : '=', value: (m[3] ?? '').trim() };
  });
}

/** A WHERE expression matching resources whose labels satisfy every term. */
export function labelsMatch<DB extends Database, TB extends keyof DB & string>(
  eb: ExpressionBuilder<DB, TB>,
  resourceType: string,
  idColumn: string,
  terms: LabelTerm[],
): Expression<SqlBool> {
  const ebx = eb as unknown as ExpressionBuilder<Database, 'labels'>;
  const parts = terms.map(t => {
    const sub = ebx
      .selectFrom('labels as l')
      .select(sql`1`.as('one'))
      .where('l.resource_type', '=', resourceType)
      .whereRef('l.resource_id', '=', sql.ref(idColumn) as never)
      .where('l.key', '=', t.key);
    if (t.op === 'exists') return ebx.exists(sub);
    if (t.op === '=') return ebx.exists(sub.where('l.value', '=', t.value ?? ''));
    return ebx.not(ebx.exists(sub.where('l.value', '=', t.value ?? '')));
  });
  return ebx.and(parts);
}

export async function replaceLabels(
  trx: import('kysely').Kysely<Database>,
  resourceType: string,
  resourceId: string,
  labels: Record<string, string>,
): Promise<void> {
  await trx
    .deleteFrom('labels')
    .where('resource_type', '=', resourceType)
    .where('resource_id', '=', resourceId)
    .execute();
  await insertLabels(trx, resourceType, resourceId, labels);
}

/** Labels of a resource that has none yet. */
export async function insertLabels(
  trx: import('kysely').Kysely<Database>,
  resourceType: string,
  resourceId: string,
  labels: Record<string, string>,
): Promise<void> {
  const rows = Object.entries(labels).map(([key, value]) => ({
    resource_type: resourceType,
    resource_id: resourceId,
    key,
    value,
  }));
  if (rows.length > 0) await trx.insertInto('labels').values(rows).execute();
}
