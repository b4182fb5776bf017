// /v1/secrets: a project's secrets. Members set and delete them; readers list
// their names. A value goes in and never comes out of the API: instances use
// it through their env ({"secret": NAME}), resolved only for their host's agent.
import { Type, type Static } from 'typebox';
import type { SecretRow } from '../store/schema.ts';
import { requireUser } from '../services/access.ts';
import * as secrets from '../services/secrets.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
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
      const q = { project: req.query.project, name: req.query.name, limit, after };
      const { rows, nextCursor } = pageOf(await secrets.list(store, p, q), limit);
      return { items: rows.map(present), nextCursor };
    },
  );

  app.post(
    '/secrets',
    { schema: { tags, summary: 'Create a secret (members)', body: SecretCreate, response: { 201: Secret } } },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      return reply.code(201).send(present(await secrets.create(store, services.secrets, p, req.body)));
    },
  );

  app.get(
    '/secrets/:id',
    { schema: { tags, summary: 'Show a secret (never its value)', params: IdParam, response: { 200: Secret } } },
    async req => present(await secrets.load(store, requireUser(principalOf(req)), req.params.id, 'reader')),
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
      return present(await secrets.update(store, services.secrets, p, req.params.id, req.body.value));
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
      await secrets.remove(store, p, req.params.id);
      return reply.code(204).send(null);
    },
  );
}
