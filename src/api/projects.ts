// /v1/projects: tenancy roots, their quotas and their members.
import { Type } from 'typebox';
import { conflict, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { newProjectRow } from '../store/projects.ts';
import { now } from '../lib/time.ts';
import { actorOf, requireClusterAdmin, requireRole, requireUser } from './access.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { findProject, findUser, getProject } from './lookup.ts';
import { decodeCursor, pageOf, parseSelector } from './paging.ts';
import { labelsMatch, replaceLabels } from '../store/labels.ts';
import { presentProject } from './present.ts';
import {
  ListQuery,
  Member,
  MemberParam,
  MemberPut,
  Page,
  Project,
  ProjectCreate,
  ProjectParam,
  ProjectPatch,
} from '../model/schemas.ts';

const tags = ['projects'];

export function projectRoutes(app: App, { store }: RouteDeps): void {
  app.get(
    '/projects',
    {
      schema: {
        tags,
        summary: 'List the projects you can see',
        querystring: ListQuery,
        response: { 200: Page(Project) },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const limit = req.query.limit ?? 100;
      const after = decodeCursor(req.query.cursor);
      const terms = parseSelector(req.query.labels);
      let q = store.db
        .selectFrom('projects')
        .selectAll()
        .orderBy('id')
        .limit(limit + 1);
      if (after) q = q.where('id', '>', after);
      if (!p.clusterAdmin) q = q.where('id', 'in', [...p.roles.keys(), '']);
      if (terms.length) q = q.where(eb => labelsMatch(eb, 'project', 'projects.id', terms));
      const { rows, nextCursor } = pageOf(await q.execute(), limit);
      return { items: rows.map(presentProject), nextCursor };
    },
  );

  app.post(
    '/projects',
    { schema: { tags, summary: 'Create a project (cluster admins)', body: ProjectCreate, response: { 201: Project } } },
    async (req, reply) => {
      const p = requireClusterAdmin(principalOf(req));
      const b = req.body;
      const row = await store.write(async ({ trx, emit }) => {
        if (await findProject(trx, b.name)) throw conflict(`project ${JSON.stringify(b.name)} already exists`);
        const t = now();
        const id = newId('prj');
        const values = newProjectRow(id, b.name, t, {
          description: b.description,
          labels: b.labels,
          quota: b.quota,
          placementStrategy: b.placementStrategy,
        });
        await trx.insertInto('projects').values(values).execute();
        await replaceLabels(trx, 'project', id, b.labels ?? {});
        emit({
          type: 'project.created',
          projectId: id,
          resourceType: 'project',
          resourceId: id,
          actor: actorOf(p),
          data: { name: b.name },
        });
        return values;
      });
      return reply.code(201).send(presentProject(row));
    },
  );

  app.get(
    '/projects/:project',
    { schema: { tags, summary: 'Show a project', params: ProjectParam, response: { 200: Project } } },
    async req => {
      const p = requireUser(principalOf(req));
      const row = await findProject(store.db, req.params.project);
      if (!row) throw notFound('project', req.params.project);
      requireRole(p, row.id, 'reader', req.params.project);
      return presentProject(row);
    },
  );

  app.patch(
    '/projects/:project',
    {
      schema: {
        tags,
        summary: 'Change a project (admins); quotas only by cluster admins',
        params: ProjectParam,
        body: ProjectPatch,
        response: { 200: Project },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const b = req.body;
      return store.write(async ({ trx, emit }) => {
        const row = await findProject(trx, req.params.project);
        if (!row) throw notFound('project', req.params.project);
        requireRole(p, row.id, 'admin', req.params.project);
        if (b.quota !== undefined) requireClusterAdmin(p);
        const q = b.quota ?? {};
        const update = {
          description: b.description ?? row.description,
          labels: b.labels ? JSON.stringify(b.labels) : row.labels,
          quota_instances: q.instances === undefined ? row.quota_instances : q.instances,
          quota_vcpus: q.vcpus === undefined ? row.quota_vcpus : q.vcpus,
          quota_memory_mib: q.memoryMib === undefined ? row.quota_memory_mib : q.memoryMib,
          quota_disk_gib: q.diskGib === undefined ? row.quota_disk_gib : q.diskGib,
          placement_strategy: b.placementStrategy ?? row.placement_strategy,
          updated_at: now(),
        };
        await trx.updateTable('projects').set(update).where('id', '=', row.id).execute();
        if (b.labels) await replaceLabels(trx, 'project', row.id, b.labels);
        emit({
          type: 'project.updated',
          projectId: row.id,
          resourceType: 'project',
          resourceId: row.id,
          actor: actorOf(p),
          data: { fields: Object.keys(b) },
        });
        return presentProject({ ...row, ...update });
      });
    },
  );

  app.delete(
    '/projects/:project',
    {
      schema: {
        tags,
        summary: 'Delete an empty project (cluster admins)',
        params: ProjectParam,
        response: { 204: Type.Null() },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await store.write(async ({ trx, emit }) => {
        const row = await findProject(trx, req.params.project);
        if (!row || (!p.clusterAdmin && !p.roles.has(row.id))) throw notFound('project', req.params.project);
        requireClusterAdmin(p);
        const inUse = await trx
          .selectFrom('instances')
          .select('id')
          .where('project_id', '=', row.id)
          .limit(1)
          .executeTakeFirst();
        if (inUse) throw conflict(`project ${row.name} still has instances; delete them first`);
        await trx
          .deleteFrom('labels')
          .where('resource_type', '=', 'project')
          .where('resource_id', '=', row.id)
          .execute();
        await trx.deleteFrom('projects').where('id', '=', row.id).execute();
        emit({
          type: 'project.deleted',
          projectId: row.id,
          resourceType: 'project',
          resourceId: row.id,
          actor: actorOf(p),
          data: { name: row.name },
        });
      });
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/projects/:project/members',
    {
      schema: {
        tags,
        summary: 'List the members of a project',
        params: ProjectParam,
        response: { 200: Type.Object({ items: Type.Array(Member) }) },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const row = await getProject(store.db, req.params.project);
      requireRole(p, row.id, 'reader', req.params.project);
      const rows = await store.db
        .selectFrom('memberships')
        .innerJoin('users', 'users.id', 'memberships.user_id')
        .select([
          'users.id as userId',
          'users.name as userName',
          'memberships.role',
          'memberships.created_at as createdAt',
        ])
        .where('memberships.project_id', '=', row.id)
        .orderBy('users.name')
        .execute();
      return { items: rows.map(r => ({ ...r, role: r.role as 'admin' | 'member' | 'reader' })) };
    },
  );

  app.put(
    '/projects/:project/members/:user',
    {
      schema: {
        tags,
        summary: "Set a user's role in a project (project admins)",
        params: MemberParam,
        body: MemberPut,
        response: { 200: Member },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      return store.write(async ({ trx, emit }) => {
        const project = await getProject(trx, req.params.project);
        requireRole(p, project.id, 'admin', req.params.project);
        const user = await findUser(trx, req.params.user);
        if (!user) throw notFound('user', req.params.user);
        const t = now();
        const existing = await trx
          .selectFrom('memberships')
          .selectAll()
          .where('project_id', '=', project.id)
          .where('user_id', '=', user.id)
          .executeTakeFirst();
        if (existing) {
          await trx
            .updateTable('memberships')
            .set({ role: req.body.role })
            .where('project_id', '=', project.id)
            .where('user_id', '=', user.id)
            .execute();
        } else {
          await trx
            .insertInto('memberships')
            .values({ project_id: project.id, user_id: user.id, role: req.body.role, created_at: t })
            .execute();
        }
        emit({
          type: 'member.set',
          projectId: project.id,
          resourceType: 'project',
          resourceId: project.id,
          actor: actorOf(p),
          data: { user: user.name, role: req.body.role },
        });
        return { userId: user.id, userName: user.name, role: req.body.role, createdAt: existing?.created_at ?? t };
      });
    },
  );

  app.delete(
    '/projects/:project/members/:user',
    {
      schema: {
        tags,
        summary: 'Remove a user from a project (project admins)',
        params: MemberParam,
        response: { 204: Type.Null() },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await store.write(async ({ trx, emit }) => {
        const project = await getProject(trx, req.params.project);
        requireRole(p, project.id, 'admin', req.params.project);
        // One answer for a user who does not exist and one who is not a member:
        // removing members tells a project admin nothing about other users.
        const user = await findUser(trx, req.params.user);
        if (!user) throw notFound('member', req.params.user);
        const res = await trx
          .deleteFrom('memberships')
          .where('project_id', '=', project.id)
          .where('user_id', '=', user.id)
          .executeTakeFirst();
        if (Number(res.numDeletedRows) === 0) throw notFound('member', req.params.user);
        emit({
          type: 'member.removed',
          projectId: project.id,
          resourceType: 'project',
          resourceId: project.id,
          actor: actorOf(p),
          data: { user: user.name },
        });
      });
      return reply.code(204).send(null);
    },
  );
}
