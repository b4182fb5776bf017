// /v1/join-tokens: secrets an agent presents once to register its host.
import { Type } from 'typebox';
import { notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { JoinTokenTable } from '../store/schema.ts';
import { actorOf, requireClusterAdmin } from './access.ts';
import { hashSecret, newSecret } from './auth.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { resolvePool } from './hosts.ts';
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

export async function createJoinToken(
  store: RouteDeps['store'],
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
    await trx.insertInto('join_tokens').values(row).execute();
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
      let q = store.db
        .selectFrom('join_tokens')
        .selectAll()
        .orderBy('id')
        .limit(limit + 1);
      if (after) q = q.where('id', '>', after);
      const { rows, nextCursor } = pageOf(await q.execute(), limit);
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
      const { row, secret } = await createJoinToken(store, actorOf(p), req.body);
      return reply.code(201).send({ ...present(row), secret });
    },
  );

  app.delete(
    '/join-tokens/:id',
    { schema: { tags, summary: 'Revoke a join token', params: IdParam, response: { 204: Type.Null() } } },
    async (req, reply) => {
      const p = requireClusterAdmin(principalOf(req));
      await store.write(async ({ trx, emit }) => {
        const res = await trx.deleteFrom('join_tokens').where('id', '=', req.params.id).executeTakeFirst();
        if (Number(res.numDeletedRows) === 0) throw notFound('join token', req.params.id);
        emit({
          type: 'join-token.deleted',
          projectId: null,
          resourceType: 'join-token',
          resourceId: req.params.id,
          actor: actorOf(p),
        });
      });
      return reply.code(204).send(null);
    },
  );
}
