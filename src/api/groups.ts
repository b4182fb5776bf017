// /v1/groups: placement groups, like Nova's server groups but at any level of
// the topology. An instance names the groups it belongs to; the scheduler
// keeps their rules (affinity, anti-affinity, spread with a max skew) at the
// group's level: host, physical-host (through nested VM hosts), rack, zone or region.
import { Type, type Static } from 'typebox';
import type { PlacementGroupRow } from '../store/schema.ts';
import { requireUser } from '../services/access.ts';
import * as groups from '../services/groups.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { decodeCursor, pageOf } from './paging.ts';
import { IdParam, Name, Page, PlacementGroup, StringEnum } from '../model/schemas.ts';
import { levels } from '../model/topology.ts';

const tags = ['groups'];
const Closed = { additionalProperties: false } as const;

export const PlacementGroupCreate = Type.Object(
  {
    project: Type.String({ minLength: 1, maxLength: 100, description: 'project id or name' }),
    name: Name,
    policy: StringEnum(['affinity', 'anti-affinity', 'spread'], {
      description: 'affinity: members together; anti-affinity: members apart; spread: members even across the level',
    }),
    strength: Type.Optional(
      StringEnum(['hard', 'soft'], {
        description: 'hard (default): a rule placement never breaks; soft: a preference',
      }),
    ),
    level: StringEnum(levels, { description: 'where the rule holds; physical-host sees through nested VM hosts' }),
    maxSkew: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1000,
        description: 'spread: most members a domain may have above the emptiest (default 1)',
      }),
    ),
  },
  Closed,
);
const GroupListQuery = Type.Object(
  {
    project: Type.Optional(Type.String({ maxLength: 100 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  Closed,
);
export type PlacementGroupOut = Static<typeof PlacementGroup>;

export function presentGroup(g: PlacementGroupRow, members: number): PlacementGroupOut {
  return {
    id: g.id,
    project: g.project_id,
    name: g.name,
    policy: g.policy as PlacementGroupOut['policy'],
    strength: g.strength as PlacementGroupOut['strength'],
    level: g.level as PlacementGroupOut['level'],
    maxSkew: g.max_skew,
    members,
    createdAt: g.created_at,
  };
}

export function groupRoutes(app: App, { store }: RouteDeps): void {
  app.get(
    '/groups',
    {
      schema: {
        tags,
        summary: 'List placement groups of the projects you can see',
        querystring: GroupListQuery,
        response: { 200: Page(PlacementGroup) },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const limit = req.query.limit ?? 100;
      const after = decodeCursor(req.query.cursor);
      const rows = await groups.list(store, p, { project: req.query.project, limit, after });
      const page = pageOf(rows, limit);
      const counts = await groups.members(
        store,
        page.rows.map(r => r.id),
      );
      return { items: page.rows.map(r => presentGroup(r, counts.get(r.id) ?? 0)), nextCursor: page.nextCursor };
    },
  );

  app.post(
    '/groups',
    {
      schema: {
        tags,
        summary: 'Create a placement group (members)',
        body: PlacementGroupCreate,
        response: { 201: PlacementGroup },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      const row = await groups.create(store, p, req.body);
      return reply.code(201).send(presentGroup(row, 0));
    },
  );

  app.get(
    '/groups/:id',
    { schema: { tags, summary: 'Show a placement group', params: IdParam, response: { 200: PlacementGroup } } },
    async req => {
      const row = await groups.load(store, requireUser(principalOf(req)), req.params.id, 'reader');
      return presentGroup(row, (await groups.members(store, [row.id])).get(row.id) ?? 0);
    },
  );

  app.delete(
    '/groups/:id',
    {
      schema: {
        tags,
        summary: 'Delete an empty placement group (members)',
        params: IdParam,
        response: { 204: Type.Null() },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await groups.remove(store, p, req.params.id);
      return reply.code(204).send(null);
    },
  );
}
