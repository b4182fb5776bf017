// API tokens. The secret is returned once, at creation; the store keeps its hash.
import { forbidden, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { TokenRow } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { deleteToken, findToken, insertToken, listTokens } from '../store/tokens.ts';
import { findUser } from '../store/users.ts';
import { actorOf, requireClusterAdmin } from './access.ts';
import { hashSecret, newSecret, type UserPrincipal } from './auth.ts';

/** The user a request names (by id or name), which must be the caller unless a cluster admin asks. */
export async function userOf(store: Store, p: UserPrincipal, ref: string | undefined): Promise<string> {
  if (ref === undefined) return p.userId;
  const u = await findUser(store.db, ref);
  if (!u || (!p.clusterAdmin && u.id !== p.userId)) throw notFound('user', ref);
  return u.id;
}

export async function list(
  store: Store,
  o: { userId: string; limit: number; after: string | undefined },
): Promise<TokenRow[]> {
  return listTokens(store.db, o);
}

export async function create(
  store: Store,
  p: UserPrincipal,
  b: { name: string; user?: string | undefined; expiresInSeconds?: number | undefined },
): Promise<{ row: TokenRow; secret: string }> {
  // A token cannot mint one that outlives it.
  if (p.expiresAt !== null) {
    const left = Math.floor((Date.parse(p.expiresAt) - Date.now()) / 1000);
    if (b.expiresInSeconds === undefined || b.expiresInSeconds > left) {
      throw forbidden(
        `the token you use expires at ${p.expiresAt}: a token it creates cannot outlive it (give expiresInSeconds of at most ${Math.max(0, left)})`,
      );
    }
  }
  const secret = newSecret('stk');
  const row = await store.write(async ({ trx, emit }) => {
    let userId = p.userId;
    if (b.user !== undefined) {
      const u = await findUser(trx, b.user);
      if (!u || (!p.clusterAdmin && u.id !== p.userId)) throw notFound('user', b.user);
      if (u.id !== p.userId) requireClusterAdmin(p);
      userId = u.id;
    }
    const t = now();
    const token = {
      id: newId('tok'),
      name: b.name,
      hash: hashSecret(secret),
      user_id: userId,
      host_id: null,
      created_at: t,
      expires_at: b.expiresInSeconds ? new Date(Date.now() + b.expiresInSeconds * 1000).toISOString() : null,
    };
    await insertToken(trx, token);
    emit({
      type: 'token.created',
      projectId: null,
      resourceType: 'token',
      resourceId: token.id,
      actor: actorOf(p),
      data: { name: b.name, userId },
    });
    return token;
  });
  return { row, secret };
}

/** A user's token, as the caller may see it (404 otherwise, and for agents' credentials). */
function visible(p: UserPrincipal, t: TokenRow | undefined, id: string): TokenRow {
  if (!t || t.user_id === null || (!p.clusterAdmin && t.user_id !== p.userId)) throw notFound('token', id);
  return t;
}

export async function show(store: Store, p: UserPrincipal, id: string): Promise<TokenRow> {
  return visible(p, await findToken(store.db, id), id);
}

export async function revoke(store: Store, p: UserPrincipal, id: string): Promise<void> {
  await store.write(async ({ trx, emit }) => {
    const t = visible(p, await findToken(trx, id), id);
    await deleteToken(trx, t.id);
    emit({
      type: 'token.deleted',
      projectId: null,
      resourceType: 'token',
      resourceId: t.id,
      actor: actorOf(p),
      data: { name: t.name },
    });
  });
}
