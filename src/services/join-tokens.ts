// Join tokens: secrets an agent presents once to register its host.
import { notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import { deleteJoinToken, insertJoinToken, listJoinTokens } from '../store/join-tokens.ts';
import type { JoinTokenRow, JoinTokenTable } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { hashSecret, newSecret } from './auth.ts';
import { resolvePool } from './hosts.ts';

export async function list(store: Store, o: { limit: number; after: string | undefined }): Promise<JoinTokenRow[]> {
  return listJoinTokens(store.db, o);
}

export async function createJoinToken(
  store: Store,
  actor: string,
  b: { description?: string | undefined; pool?: string | undefined; expiresInSeconds?: number | undefined },
): Promise<{ row: JoinTokenTable; secret: string }> {
  const secret = newSecret('sjt');
  const row = await store.write(async ({ trx, emit }) => {
    const row: JoinTokenTable = {
      id: newId('jtk'),
      hash: hashSecret(secret),
      description: b.description ?? '',
      pool: await resolvePool(trx, b.pool),
      created_at: now(),
      expires_at: b.expiresInSeconds ? new Date(Date.now() + b.expiresInSeconds * 1000).toISOString() : null,
    };
    await insertJoinToken(trx, row);
    emit({
      type: 'join-token.created',
      projectId: null,
      resourceType: 'join-token',
      resourceId: row.id,
      actor,
      data: { description: row.description },
    });
    return row;
  });
  return { row, secret };
}

export async function remove(store: Store, actor: string, id: string): Promise<void> {
  await store.write(async ({ trx, emit }) => {
    if (!(await deleteJoinToken(trx, id))) throw notFound('join token', id);
    emit({ type: 'join-token.deleted', projectId: null, resourceType: 'join-token', resourceId: id, actor });
  });
}
