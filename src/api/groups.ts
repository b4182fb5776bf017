// /v1/groups: placement groups, like Nova's server groups but at any level of
// the topology. An instance names the groups it belongs to; the scheduler
// keeps their rules (affinity, anti-affinity, spread with a max skew) at the
// group's level: host, physical-host (through nested VM hosts), rack, zone or region.
import { Type, type Static } from 'typebox';
import { conflict, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { PlacementGroupRow } from '../store/schema.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { actorOf, canSee, requireRole, requireUser } from './access.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { getProject, listScope } from './lookup.ts';
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
  const membersOf = async (ids: string[]): Promise<Map<string, number>> => {
    if (ids.length === 0) return new Map();
    const rows = await store.db
      .selectFrom('instance_groups')
      .select(['group_id', eb => eb.fn.countAll<number>().as('n')])
      .where('group_id', 'in', ids)
      .groupBy('group_id')
      .execute();
    return new Map(rows.map(r => [r.group_id, Number(r.n)]));
  };

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
      let q = store.db
        .selectFrom('placement_groups')
        .selectAll()
        .orderBy('id')
        .limit(limit + 1);
      const projects = await listScope(store.db, p, req.query.project);
      if (projects !== 'all') q = q.where('project_id', 'in', projects);
      if (after) q = q.where('id', '>', after);
      const { rows, nextCursor } = pageOf(await q.execute(), limit);
      const counts = await membersOf(rows.map(r => r.id));
      return { items: rows.map(r => presentGroup(r, counts.get(r.id) ?? 0)), nextCursor };
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
      const project = await getProject(store.db, req.body.project);
      requireRole(p, project.id, 'member', req.body.project);
      const b = req.body;
      const row: PlacementGroupRow = {
        id: newId('grp'),
        project_id: project.id,
        name: b.name,
        policy: b.policy,
        strength: b.strength ?? 'hard',
        level: b.level,
        max_skew: b.maxSkew ?? 1,
        created_at: now(),
      };
      await store.write(async ({ trx, emit }) => {
        try {
          await trx.insertInto('placement_groups').values(row).execute();
        } catch (err) {
          if (isUniqueViolation(err)) throw conflict(`group ${JSON.stringify(b.name)} already exists in this project`);
          throw err;
        }
        emit({
          type: 'group.created',
          projectId: project.id,
          resourceType: 'group',
          resourceId: row.id,
          actor: actorOf(p),
          data: { name: row.name, policy: row.policy, level: row.level },
        });
      });
      return reply.code(201).send(presentGroup(row, 0));
    },
  );

  const load = async (
    id: string,
    p: ReturnType<typeof requireUser>,
    role: 'reader' | 'member',
  ): Promise<PlacementGroupRow> => {
    const row = await store.db.selectFrom('placement_groups').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || !canSee(p, row.project_id)) throw notFound('group', id);
    requireRole(p, row.project_id, role, id, 'group');
    return row;
  };

  app.get(
    '/groups/:id',
    { schema: { tags, summary: 'Show a placement group', params: IdParam, response: { 200: PlacementGroup } } },
    async req => {
      const row = await load(req.params.id, requireUser(principalOf(req)), 'reader');
      return presentGroup(row, (await membersOf([row.id])).get(row.id) ?? 0);
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
      const row = await load(req.params.id, p, 'member');
      await store.write(async ({ trx, emit }) => {
        const used = await trx
          .selectFrom('instance_groups')
          .select('instance_id')
          .where('group_id', '=', row.id)
          .limit(1)
          .executeTakeFirst();
        if (used) throw conflict(`group ${row.name} still has members; delete them first`);
        await trx.deleteFrom('placement_groups').where('id', '=', row.id).execute();
        emit({
          type: 'group.deleted',
          projectId: row.project_id,
          resourceType: 'group',
          resourceId: row.id,
          actor: actorOf(p),
          data: { name: row.name },
        });
      });
      return reply.code(204).send(null);
    },
  );
}
