// /v1/tokens: API tokens. The secret is returned once, at creation.
import { Type } from 'typebox';
import type { TokenRow } from '../store/schema.ts';
import { requireUser } from '../services/access.ts';
import * as tokens from '../services/tokens.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
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
      const userId = await tokens.userOf(store, p, req.query.user);
      const limit = req.query.limit ?? 100;
      const after = decodeCursor(req.query.cursor);
      const rows = await tokens.list(store, { userId, limit, after });
      const page = pageOf(rows, limit);
      return { items: page.rows.map(present), nextCursor: page.nextCursor };
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
      const { row, secret } = await tokens.create(store, p, req.body);
      return reply.code(201).send({ ...present(row), secret });
    },
  );

  app.get(
    '/tokens/:id',
    { schema: { tags, summary: 'Show a token (never its secret)', params: IdParam, response: { 200: Token } } },
    async req => {
      const p = requireUser(principalOf(req));
      return present(await tokens.show(store, p, req.params.id));
    },
  );

  app.delete(
    '/tokens/:id',
    { schema: { tags, summary: 'Revoke a token', params: IdParam, response: { 204: Type.Null() } } },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await tokens.revoke(store, p, req.params.id);
      return reply.code(204).send(null);
    },
  );
}
