// /v1/join-tokens: secrets an agent presents once to register its host.
import { Type } from 'typebox';
import type { JoinTokenTable } from '../store/schema.ts';
import { actorOf, requireClusterAdmin } from '../services/access.ts';
import * as joinTokens from '../services/join-tokens.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { decodeCursor, pageOf } from './paging.ts';
import { IdParam, JoinToken, JoinTokenCreate, JoinTokenCreated, PageQuery, Page } from '../model/schemas.ts';

const tags = ['hosts'];
const present = (t: JoinTokenTable) => ({
  id: t.id,
  description: t.description,
  pool: t.pool,
  createdAt: t.created_at,
  expiresAt: t.expires_at,
});

export function joinTokenRoutes(app: App, { store }: RouteDeps): void {
  app.get(
    '/join-tokens',
    {
      schema: {
        tags,
        summary: 'List join tokens (cluster admins)',
        querystring: PageQuery,
        response: { 200: Page(JoinToken) },
      },
    },
    async req => {
      requireClusterAdmin(principalOf(req));
      const limit = req.query.limit ?? 100;
      const after = decodeCursor(req.query.cursor);
      const { rows, nextCursor } = pageOf(await joinTokens.list(store, { limit, after }), limit);
      return { items: rows.map(present), nextCursor };
    },
  );

  app.post(
    '/join-tokens',
    {
      schema: {
        tags,
        summary: 'Create a join token for agents (cluster admins)',
        body: JoinTokenCreate,
        response: { 201: JoinTokenCreated },
      },
    },
    async (req, reply) => {
      const p = requireClusterAdmin(principalOf(req));
      const { row, secret } = await joinTokens.createJoinToken(store, actorOf(p), req.body);
      return reply.code(201).send({ ...present(row), secret });
    },
  );

  app.delete(
    '/join-tokens/:id',
    { schema: { tags, summary: 'Revoke a join token', params: IdParam, response: { 204: Type.Null() } } },
    async (req, reply) => {
      const p = requireClusterAdmin(principalOf(req));
      await joinTokens.remove(store, actorOf(p), req.params.id);
      return reply.code(204).send(null);
    },
  );
}
