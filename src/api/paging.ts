// Cursor pagination and label selectors, shared by every list route.
// Lists are ordered by id (ULIDs: creation order), and a cursor is the last id
// of the previous page, opaque to clients.
import { invalid } from '../lib/errors.ts';
import type { LabelTerm } from '../store/labels.ts';

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
