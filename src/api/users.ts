// /v1/users and /v1/whoami.
import { Type } from 'typebox';
import { ApiError, conflict, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { Role } from '../model/kinds.ts';
import type { Db } from '../store/db.ts';
import type { UserRow } from '../store/schema.ts';
import { actorOf, requireClusterAdmin, requireUser } from './access.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { findUser, getProject } from './lookup.ts';
import { decodeCursor, pageOf } from './paging.ts';
import { IdParam, PageQuery, Page, User, UserCreate, Whoami, type UserOut } from '../model/schemas.ts';

const tags = ['users'];

async function presentUsers(db: Db, users: UserRow[]): Promise<UserOut[]> {
  if (users.length === 0) return [];
  const ms = await db
    .selectFrom('memberships')
    .innerJoin('projects', 'projects.id', 'memberships.project_id')
    .select(['memberships.user_id', 'projects.id as projectId', 'projects.name as projectName', 'memberships.role'])
    .where(
      'memberships.user_id',
      'in',
      users.map(u => u.id),
    )
    .orderBy('projects.name')
    .execute();
  return users.map(u => ({
    id: u.id,
    name: u.name,
    clusterAdmin: u.cluster_admin === 1,
    projects: ms
      .filter(m => m.user_id === u.id)
      .map(m => ({ projectId: m.projectId, projectName: m.projectName, role: m.role as Role })),
    createdAt: u.created_at,
  }));
}

export function userRoutes(app: App, { store }: RouteDeps): void {
  app.get(
    '/whoami',
    { schema: { tags, summary: 'Who the token belongs to', response: { 200: Whoami } } },
    async req => {
      const p = principalOf(req);
      if (p.kind !== 'user')
        return { kind: 'agent' as const, id: p.hostId, name: p.name, clusterAdmin: false, projects: [] };
      const user = await store.db.selectFrom('users').selectAll().where('id', '=', p.userId).executeTakeFirstOrThrow();
      const [out] = await presentUsers(store.db, [user]);
      return {
        kind: 'user' as const,
        id: p.userId,
        name: p.name,
        clusterAdmin: p.clusterAdmin,
        projects: out?.projects ?? [],
      };
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
      let q = store.db
        .selectFrom('users')
        .selectAll()
        .orderBy('id')
        .limit(limit + 1);
      if (after) q = q.where('id', '>', after);
      if (!p.clusterAdmin) q = q.where('id', '=', p.userId);
      const { rows, nextCursor } = pageOf(await q.execute(), limit);
      return { items: await presentUsers(store.db, rows), nextCursor };
    },
  );

  app.post(
    '/users',
    { schema: { tags, summary: 'Create a user (cluster admins)', body: UserCreate, response: { 201: User } } },
    async (req, reply) => {
      const p = requireClusterAdmin(principalOf(req));
      const b = req.body;
      const row = await store.write(async ({ trx, emit }) => {
        if (await findUser(trx, b.name)) throw conflict(`user ${JSON.stringify(b.name)} already exists`);
        const t = now();
        const user = { id: newId('usr'), name: b.name, cluster_admin: b.clusterAdmin ? 1 : 0, created_at: t };
        await trx.insertInto('users').values(user).execute();
        const seen = new Set<string>();
        for (const m of b.projects ?? []) {
          const project = await getProject(trx, m.project);
          if (seen.has(project.id)) throw new ApiError('invalid_request', `project ${m.project} is listed twice`);
          seen.add(project.id);
          await trx
            .insertInto('memberships')
            .values({ project_id: project.id, user_id: user.id, role: m.role, created_at: t })
            .execute();
        }
        emit({
          type: 'user.created',
          projectId: null,
          resourceType: 'user',
          resourceId: user.id,
          actor: actorOf(p),
          data: { name: user.name },
        });
        return user;
      });
      const [out] = await presentUsers(store.db, [row]);
      return reply.code(201).send(out!);
    },
  );

  app.get(
    '/users/:id',
    { schema: { tags, summary: 'Show a user', params: IdParam, response: { 200: User } } },
    async req => {
      const p = requireUser(principalOf(req));
      const user = await findUser(store.db, req.params.id);
      if (!user || (!p.clusterAdmin && user.id !== p.userId)) throw notFound('user', req.params.id);
      const [out] = await presentUsers(store.db, [user]);
      return out!;
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
      await store.write(async ({ trx, emit }) => {
        const user = await findUser(trx, req.params.id);
        if (!user || (!p.clusterAdmin && user.id !== p.userId)) throw notFound('user', req.params.id);
        requireClusterAdmin(p);
        if (user.id === p.userId) throw conflict('you cannot delete yourself');
        await trx.deleteFrom('users').where('id', '=', user.id).execute();
        emit({
          type: 'user.deleted',
          projectId: null,
          resourceType: 'user',
          resourceId: user.id,
          actor: actorOf(p),
          data: { name: user.name },
        });
      });
      return reply.code(204).send(null);
    },
  );
}
