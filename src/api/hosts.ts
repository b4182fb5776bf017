// /v1/hosts: the places instances run. Agents register hosts themselves
// (see agent.ts); cluster admins may also record, change and remove them.
import { Type } from 'typebox';
import { requireClusterAdmin, requireUser } from '../services/access.ts';
import * as hosts from '../services/hosts.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { decodeCursor, pageOf, parseSelector } from './paging.ts';
import { presentHost } from './present.ts';
import { Host, HostCreate, HostPatch, IdParam, ListQuery, Page } from '../model/schemas.ts';

const tags = ['hosts'];

const HostDeleteQuery = Type.Object(
  {
    force: Type.Optional(
      Type.Boolean({ description: 'remove a host that is down together with the instances it held' }),
    ),
  },
  { additionalProperties: false },
);

export function hostRoutes(app: App, { store }: RouteDeps): void {
  app.get(
    '/hosts',
    { schema: { tags, summary: 'List hosts', querystring: ListQuery, response: { 200: Page(Host) } } },
    async req => {
      const p = requireUser(principalOf(req));
      const limit = req.query.limit ?? 100;
      const after = decodeCursor(req.query.cursor);
      const labels = parseSelector(req.query.labels);
      const { rows, nextCursor } = pageOf(await hosts.list(store, p, { limit, after, labels }), limit);
      return { items: rows.map(presentHost), nextCursor };
    },
  );

  app.post(
    '/hosts',
    { schema: { tags, summary: 'Record a host by hand (cluster admins)', body: HostCreate, response: { 201: Host } } },
    async (req, reply) => {
      const p = requireClusterAdmin(principalOf(req));
      return reply.code(201).send(presentHost(await hosts.create(store, p, req.body)));
    },
  );

  app.get(
    '/hosts/:id',
    { schema: { tags, summary: 'Show a host', params: IdParam, response: { 200: Host } } },
    async req => {
      const p = requireUser(principalOf(req));
      return presentHost(await hosts.show(store, p, req.params.id));
    },
  );

  app.patch(
    '/hosts/:id',
    {
      schema: {
        tags,
        summary: 'Change labels, topology, pool or drain state (cluster admins)',
        params: IdParam,
        body: HostPatch,
        response: { 200: Host },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      return presentHost(await hosts.update(store, p, req.params.id, req.body));
    },
  );

  app.delete(
    '/hosts/:id',
    {
      schema: {
        tags,
        summary:
          'Remove a host that holds no instances, or with ?force=true a dead one together with its instances (cluster admins)',
        params: IdParam,
        querystring: HostDeleteQuery,
        response: { 204: Type.Null() },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await hosts.remove(store, p, req.params.id, req.query.force ?? false);
      return reply.code(204).send(null);
    },
  );
}
