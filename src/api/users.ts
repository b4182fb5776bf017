// /v1/users and /v1/whoami.
import { Type } from 'typebox';
import { requireClusterAdmin, requireUser } from '../services/access.ts';
import * as users from '../services/users.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { decodeCursor, pageOf } from './paging.ts';
import { IdParam, PageQuery, Page, User, UserCreate, Whoami } from '../model/schemas.ts';

const tags = ['users'];

export function userRoutes(app: App, { store }: RouteDeps): void {
  app.get(
    '/whoami',
    { schema: { tags, summary: 'Who the token belongs to', response: { 200: Whoami } } },
    async req => {
      const p = principalOf(req);
      if (p.kind !== 'user')
        return { kind: 'agent' as const, id: p.hostId, name: p.name, clusterAdmin: false, projects: [] };
      const projects = await users.whoami(store, p);
      return { kind: 'user' as const, id: p.userId, name: p.name, clusterAdmin: p.clusterAdmin, projects };
    },
  );

  app.get(
    '/users',
    {
      schema: {
        tags,
        summary: 'List users (cluster admins see all, others themselves)',
        querystring: PageQuery,
        response: { 200: Page(User) },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const limit = req.query.limit ?? 100;
      const after = decodeCursor(req.query.cursor);
      const { rows, nextCursor } = pageOf(await users.list(store, p, { limit, after }), limit);
      return { items: await users.withProjects(store, rows), nextCursor };
    },
  );

  app.post(
    '/users',
    { schema: { tags, summary: 'Create a user (cluster admins)', body: UserCreate, response: { 201: User } } },
    async (req, reply) => {
      const p = requireClusterAdmin(principalOf(req));
      return reply.code(201).send(await users.create(store, p, req.body));
    },
  );

  app.get(
    '/users/:id',
    { schema: { tags, summary: 'Show a user', params: IdParam, response: { 200: User } } },
    async req => {
      const p = requireUser(principalOf(req));
      return users.show(store, p, req.params.id);
    },
  );

  app.delete(
    '/users/:id',
    {
      schema: {
        tags,
        summary: 'Delete a user and their tokens (cluster admins)',
        params: IdParam,
        response: { 204: Type.Null() },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await users.remove(store, p, req.params.id);
      return reply.code(204).send(null);
    },
  );
}
