// The join_tokens table: secrets an agent presents once to register its host.
import type { JoinTokenRow, JoinTokenTable } from './schema.ts';
import type { Db } from './store.ts';

export async function findJoinTokenByHash(db: Db, hash: string): Promise<JoinTokenRow | undefined> {
  return db.selectFrom('join_tokens').selectAll().where('hash', '=', hash).executeTakeFirst();
}

/** Up to limit + 1 join tokens in id order. */
export async function listJoinTokens(db: Db, o: { limit: number; after: string | undefined }): Promise<JoinTokenRow[]> {
  let q = db
    .selectFrom('join_tokens')
    .selectAll()
    .orderBy('id')
    .limit(o.limit + 1);
  if (o.after) q = q.where('id', '>', o.after);
  return q.execute();
}

export async function insertJoinToken(db: Db, row: JoinTokenTable): Promise<void> {
  await db.insertInto('join_tokens').values(row).execute();
}

/** Deletes a join token; false when there was none. */
export async function deleteJoinToken(db: Db, id: string): Promise<boolean> {
  const res = await db.deleteFrom('join_tokens').where('id', '=', id).executeTakeFirst();
  return Number(res.numDeletedRows) > 0;
}
