// /v1/nodes: bare-metal servers (cluster admins). Enrolled with their BMC,
// moved through their provisioning states by actions; their conductor does
// the work (/v1/agent/nodes).
import { Type } from 'typebox';
import { requireUser } from '../services/access.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { decodeCursor, pageOf } from './paging.ts';
import { presentNode } from './present.ts';
import { IdParam, ListQuery, Page } from '../model/schemas.ts';
import { Node, NodeEnroll, NodeMaintenance, NodeProvision } from '../model/nodes.ts';
import type { NodeService } from '../services/nodes.ts';
import type { NodeRow } from '../store/schema.ts';

const tags = ['nodes'];

async function present(nodes: NodeService, n: NodeRow) {
  const { host, conductor } = await nodes.details(n);
  return presentNode(n, host, conductor);
}

export function nodeRoutes(app: App, { services }: RouteDeps): void {
  const nodes = services.nodes;

  app.get(
    '/nodes',
    {
      schema: {
        tags,
        summary: 'List bare-metal nodes (cluster admins)',
        querystring: ListQuery,
        response: { 200: Page(Node) },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const limit = req.query.limit ?? 100;
      const { rows, nextCursor } = pageOf(await nodes.list(p, { limit, after: decodeCursor(req.query.cursor) }), limit);
      return { items: await Promise.all(rows.map(n => present(nodes, n))), nextCursor };
    },
  );

  app.post(
    '/nodes',
    {
      schema: {
        tags,
        summary: 'Enroll a bare-metal node by its BMC (cluster admins); it starts in `enroll`',
        body: NodeEnroll,
        response: { 201: Node },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      return reply.code(201).send(await present(nodes, await nodes.enroll(p, req.body)));
    },
  );

  app.get(
    '/nodes/:id',
    { schema: { tags, summary: 'Show a node', params: IdParam, response: { 200: Node } } },
    async req => present(nodes, await nodes.show(requireUser(principalOf(req)), req.params.id)),
  );

  app.post(
    '/nodes/:id/provision',
    {
      schema: {
        tags,
        summary: 'Move a node on: manage (verify the BMC), inspect, clean, provide (clean, then available)',
        params: IdParam,
        body: NodeProvision,
        response: { 202: Node },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      return reply.code(202).send(await present(nodes, await nodes.provision(p, req.params.id, req.body.action)));
    },
  );

  app.put(
    '/nodes/:id/maintenance',
    {
      schema: {
        tags,
        summary: 'Put a node in maintenance (its conductor leaves it alone, nothing is placed on it) or back',
        params: IdParam,
        body: NodeMaintenance,
        response: { 200: Node },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const n = await nodes.maintenance(p, req.params.id, req.body.on, req.body.reason);
      return present(nodes, n);
    },
  );

  app.delete(
    '/nodes/:id',
    {
      schema: {
        tags,
        summary: 'Remove a node that holds no instance and runs no step',
        params: IdParam,
        response: { 204: Type.Null() },
      },
    },
    async (req, reply) => {
      await nodes.remove(requireUser(principalOf(req)), req.params.id);
      return reply.code(204).send(null);
    },
  );
}
