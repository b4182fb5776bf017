// /v1/tokens: API tokens. The secret is returned once, at creation.
import { Type } from 'typebox';
import { forbidden, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { TokenRow } from '../store/schema.ts';
import { actorOf, requireClusterAdmin, requireUser } from './access.ts';
import { hashSecret, newSecret } from './auth.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { findUser } from './lookup.ts';
import { decodeCursor, pageOf } from './paging.ts';
import { IdParam, Page, Token, TokenCreate, TokenCreated, TokenListQuery } from '../model/schemas.ts';

const tags = ['tokens'];
const present = (t: TokenRow) => ({
  id: t.id,
  name: t.name,
  userId: t.user_id ?? '',
  createdAt: t.created_at,
  expiresAt: t.expires_at,
});

export function tokenRoutes(app: App, { store }: RouteDeps): void {
  app.get(
    '/tokens',
    {
      schema: {
        tags,
        summary: 'List your tokens (cluster admins: ?user=)',
        querystring: TokenListQuery,
        response: { 200: Page(Token) },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      let userId = p.userId;
      if (req.query.user !== undefined) {
        const u = await findUser(store.db, req.query.user);
        if (!u || (!p.clusterAdmin && u.id !== p.userId)) throw notFound('user', req.query.user);
        userId = u.id;
      }
      const limit = req.query.limit ?? 100;
      const after = decodeCursor(req.query.cursor);
      let q = store.db
        .selectFrom('tokens')
        .selectAll()
        .where('user_id', '=', userId)
        .orderBy('id')
        .limit(limit + 1);
      if (after) q = q.where('id', '>', after);
      const { rows, nextCursor } = pageOf(await q.execute(), limit);
      return { items: rows.map(present), nextCursor };
    },
  );

  app.post(
    '/tokens',
    {
      schema: {
        tags,
        summary: 'Create a token for yourself (cluster admins: for anyone)',
        body: TokenCreate,
        response: { 201: TokenCreated },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      const b = req.body;
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
        await trx.insertInto('tokens').values(token).execute();
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
      return reply.code(201).send({ ...present(row), secret });
    },
  );

  app.get(
    '/tokens/:id',
    { schema: { tags, summary: 'Show a token (never its secret)', params: IdParam, response: { 200: Token } } },
    async req => {
      const p = requireUser(principalOf(req));
      const t = await store.db.selectFrom('tokens').selectAll().where('id', '=', req.params.id).executeTakeFirst();
      if (!t || t.user_id === null || (!p.clusterAdmin && t.user_id !== p.userId))
        throw notFound('token', req.params.id);
      return present(t);
    },
  );

  app.delete(
    '/tokens/:id',
    { schema: { tags, summary: 'Revoke a token', params: IdParam, response: { 204: Type.Null() } } },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await store.write(async ({ trx, emit }) => {
        const t = await trx.selectFrom('tokens').selectAll().where('id', '=', req.params.id).executeTakeFirst();
        if (!t || t.user_id === null || (!p.clusterAdmin && t.user_id !== p.userId))
          throw notFound('token', req.params.id);
        await trx.deleteFrom('tokens').where('id', '=', t.id).execute();
        emit({
          type: 'token.deleted',
          projectId: null,
          resourceType: 'token',
          resourceId: t.id,
          actor: actorOf(p),
          data: { name: t.name },
        });
      });
      return reply.code(204).send(null);
    },
  );
}
