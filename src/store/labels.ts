// Labels live in their own table, so a label selector is an indexed join
// rather than a JSON function: the same query on SQLite and PostgreSQL.
import { sql, type Expression, type ExpressionBuilder, type Kysely, type SqlBool } from 'kysely';
import type { Database } from './schema.ts';

export type LabelTerm = { key: string; op: '=' | '!=' | 'exists'; value?: string };

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
  trx: Kysely<Database>,
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
  trx: Kysely<Database>,
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
