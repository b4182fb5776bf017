// The tokens table: users' API tokens and agents' credentials, stored hashed.
import type { TokenRow } from './schema.ts';
import type { Db } from './store.ts';

export async function findToken(db: Db, id: string): Promise<TokenRow | undefined> {
  return db.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findTokenByHash(db: Db, hash: string): Promise<TokenRow | undefined> {
  return db.selectFrom('tokens').selectAll().where('hash', '=', hash).executeTakeFirst();
}

/** Up to limit + 1 of a user's tokens in id order. */
export async function listTokens(
  db: Db,
  o: { userId: string; limit: number; after: string | undefined },
): Promise<TokenRow[]> {
  let q = db
    .selectFrom('tokens')
    .selectAll()
    .where('user_id', '=', o.userId)
    .orderBy('id')
    .limit(o.limit + 1);
  if (o.after) q = q.where('id', '>', o.after);
  return q.execute();
}

export async function insertToken(db: Db, row: TokenRow): Promise<void> {
  await db.insertInto('tokens').values(row).execute();
}

export async function deleteToken(db: Db, id: string): Promise<void> {
  await db.deleteFrom('tokens').where('id', '=', id).execute();
}

/** Revokes a host's agent credentials. */
export async function deleteHostTokens(db: Db, hostId: string): Promise<void> {
  await db.deleteFrom('tokens').where('host_id', '=', hostId).execute();
}
