// /v1/secrets: a project's secrets. Members set and delete them; readers list
// their names. A value goes in and never comes out of the API: instances use
// it through their env ({"secret": NAME}), resolved only for their host's agent.
import { Type, type Static } from 'typebox';
import { conflict, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import { refersTo } from '../services/secrets.ts';
import { isUniqueViolation } from '../store/errors.ts';
import type { SecretRow } from '../store/schema.ts';
import { actorOf, canSee, requireRole, requireUser } from './access.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { getProject, listScope } from './lookup.ts';
import { decodeCursor, pageOf } from './paging.ts';
import { IdParam, Name, Page, Secret } from '../model/schemas.ts';

const tags = ['secrets'];
const Closed = { additionalProperties: false } as const;
const Value = Type.String({ maxLength: 65536, description: 'the value; written, never read back' });

const SecretCreate = Type.Object(
  {
    project: Type.String({ minLength: 1, maxLength: 100, description: 'project id or name' }),
    name: Name,
    value: Value,
  },
  Closed,
);
const SecretUpdate = Type.Object({ value: Value }, Closed);
const SecretListQuery = Type.Object(
  {
    project: Type.Optional(Type.String({ maxLength: 100 })),
    name: Type.Optional(Type.String({ maxLength: 100 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  Closed,
);

const present = (s: SecretRow): Static<typeof Secret> => ({
  id: s.id,
  project: s.project_id,
  name: s.name,
  createdAt: s.created_at,
  updatedAt: s.updated_at,
});

export function secretRoutes(app: App, { store, services }: RouteDeps): void {
  app.get(
    '/secrets',
    {
      schema: {
        tags,
        summary: 'List the secrets of the projects you can see (names, never values)',
        querystring: SecretListQuery,
        response: { 200: Page(Secret) },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const limit = req.query.limit ?? 100;
      const after = decodeCursor(req.query.cursor);
      let q = store.db
        .selectFrom('secrets')
        .selectAll()
        .orderBy('id')
        .limit(limit + 1);
      const projects = await listScope(store.db, p, req.query.project);
      if (projects !== 'all') q = q.where('project_id', 'in', projects);
      if (req.query.name !== undefined) q = q.where('name', '=', req.query.name);
      if (after) q = q.where('id', '>', after);
      const { rows, nextCursor } = pageOf(await q.execute(), limit);
      return { items: rows.map(present), nextCursor };
    },
  );

  app.post(
    '/secrets',
    { schema: { tags, summary: 'Create a secret (members)', body: SecretCreate, response: { 201: Secret } } },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      const project = await getProject(store.db, req.body.project);
      requireRole(p, project.id, 'member', req.body.project);
      const t = now();
      const id = newId('sec');
      const row: SecretRow = {
        id,
        project_id: project.id,
        name: req.body.name,
        ciphertext: services.secrets.seal(req.body.value, id),
        created_at: t,
        updated_at: t,
      };
      await store.write(async ({ trx, emit }) => {
        try {
          await trx.insertInto('secrets').values(row).execute();
        } catch (err) {
          if (isUniqueViolation(err))
            throw conflict(`secret ${JSON.stringify(row.name)} already exists in this project`);
          throw err;
        }
        emit({
          type: 'secret.created',
          projectId: project.id,
          resourceType: 'secret',
          resourceId: id,
          actor: actorOf(p),
          data: { name: row.name },
        });
      });
      return reply.code(201).send(present(row));
    },
  );

  const load = async (id: string, p: ReturnType<typeof requireUser>, role: 'reader' | 'member'): Promise<SecretRow> => {
    const row = await store.db.selectFrom('secrets').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || !canSee(p, row.project_id)) throw notFound('secret', id);
    requireRole(p, row.project_id, role, id, 'secret');
    return row;
  };

  app.get(
    '/secrets/:id',
    { schema: { tags, summary: 'Show a secret (never its value)', params: IdParam, response: { 200: Secret } } },
    async req => present(await load(req.params.id, requireUser(principalOf(req)), 'reader')),
  );

  app.put(
    '/secrets/:id',
    {
      schema: {
        tags,
        summary: "Replace a secret's value (members); instances get it at their next start",
        params: IdParam,
        body: SecretUpdate,
        response: { 200: Secret },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const row = await load(req.params.id, p, 'member');
      const updated = { ...row, ciphertext: services.secrets.seal(req.body.value, row.id), updated_at: now() };
      await store.write(async ({ trx, emit }) => {
        const res = await trx
          .updateTable('secrets')
          .set({ ciphertext: updated.ciphertext, updated_at: updated.updated_at })
          .where('id', '=', row.id)
          .executeTakeFirst();
        if (Number(res.numUpdatedRows) === 0) throw notFound('secret', row.id);
        emit({
          type: 'secret.updated',
          projectId: row.project_id,
          resourceType: 'secret',
          resourceId: row.id,
          actor: actorOf(p),
          data: { name: row.name },
        });
      });
      return present(updated);
    },
  );

  app.delete(
    '/secrets/:id',
    {
      schema: {
        tags,
        summary: 'Delete a secret no instance refers to (members)',
        params: IdParam,
        response: { 204: Type.Null() },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      const row = await load(req.params.id, p, 'member');
      await store.write(async ({ trx, emit }) => {
        const users = await trx
          .selectFrom('instances')
          .select('name')
          .where('project_id', '=', row.project_id)
          .where('env', 'like', refersTo(row.name))
          .limit(5)
          .execute();
        if (users.length > 0)
          throw conflict(
            `secret ${row.name} is used by instance(s) ${users.map(u => u.name).join(', ')}; delete them first`,
          );
        await trx.deleteFrom('secrets').where('id', '=', row.id).execute();
        emit({
          type: 'secret.deleted',
          projectId: row.project_id,
          resourceType: 'secret',
          resourceId: row.id,
          actor: actorOf(p),
          data: { name: row.name },
        });
      });
      return reply.code(204).send(null);
    },
  );
}
