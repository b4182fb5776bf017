// /v1/hosts: the places instances run. Agents register hosts themselves
// (see agent.ts); cluster admins may also record, change and remove them.
import { Type } from 'typebox';
import { conflict, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { HostRow, HostTable } from '../store/schema.ts';
import type { Trx } from '../store/store.ts';
import type { UserPrincipal } from './auth.ts';
import { actorOf, requireClusterAdmin, requireUser } from './access.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { findHost, getProject } from './lookup.ts';
import { decodeCursor, pageOf, parseSelector } from './paging.ts';
import { labelsMatch, replaceLabels } from '../store/labels.ts';
import { finalizeDelete } from '../services/instances.ts';
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

/** Shared hosts are visible to every user; dedicated ones only to their project. */
function visible(p: UserPrincipal, h: HostRow): boolean {
  return p.clusterAdmin || h.pool === null || p.roles.has(h.pool);
}

export async function resolvePool(trx: Trx, pool: string | null | undefined): Promise<string | null> {
  if (pool === null || pool === undefined) return null;
  return (await getProject(trx, pool)).id;
}

/**
 * The instance a nested host runs inside. A host of a project's pool may only
 * name an instance of that project; the answer for one it may not name is the
 * same as for one that does not exist.
 */
export async function resolveParent(
  trx: Trx,
  parent: string | undefined,
  pool: string | null = null,
): Promise<string | null> {
  if (parent === undefined) return null;
  const inst = await trx
    .selectFrom('instances')
    .select(['id', 'project_id'])
    .where('id', '=', parent)
    .executeTakeFirst();
  if (!inst || (pool !== null && inst.project_id !== pool)) throw notFound('parent instance', parent);
  return inst.id;
}

export function hostRoutes(app: App, { store }: RouteDeps): void {
  app.get(
    '/hosts',
    { schema: { tags, summary: 'List hosts', querystring: ListQuery, response: { 200: Page(Host) } } },
    async req => {
      const p = requireUser(principalOf(req));
      const limit = req.query.limit ?? 100;
      const after = decodeCursor(req.query.cursor);
      const terms = parseSelector(req.query.labels);
      let q = store.db
        .selectFrom('hosts')
        .selectAll()
        .orderBy('id')
        .limit(limit + 1);
      if (after) q = q.where('id', '>', after);
      if (!p.clusterAdmin)
        q = q.where(eb => eb.or([eb('pool', 'is', null), eb('pool', 'in', [...p.roles.keys(), ''])]));
      if (terms.length) q = q.where(eb => labelsMatch(eb, 'host', 'hosts.id', terms));
      const { rows, nextCursor } = pageOf(await q.execute(), limit);
      return { items: rows.map(presentHost), nextCursor };
    },
  );

  app.post(
    '/hosts',
    { schema: { tags, summary: 'Record a host by hand (cluster admins)', body: HostCreate, response: { 201: Host } } },
    async (req, reply) => {
      const p = requireClusterAdmin(principalOf(req));
      const b = req.body;
      const row = await store.write(async ({ trx, emit }) => {
        if (await findHost(trx, b.name)) throw conflict(`host ${JSON.stringify(b.name)} already exists`);
        const t = now();
        const alloc = b.allocatable ?? b.capacity;
        const row: HostTable = {
          id: newId('hst'),
          name: b.name,
          kind: b.kind ?? (b.parent ? 'virtual' : 'physical'),
          parent_instance_id: await resolveParent(trx, b.parent),
          region: b.topology?.region ?? '',
          zone: b.topology?.zone ?? '',
          rack: b.topology?.rack ?? '',
          labels: JSON.stringify(b.labels ?? {}),
          capacity_vcpus: b.capacity.vcpus,
          capacity_memory_mib: b.capacity.memoryMib,
          capacity_disk_gib: b.capacity.diskGib,
          allocatable_vcpus: alloc.vcpus,
          allocatable_memory_mib: Math.min(alloc.memoryMib, b.capacity.memoryMib),
          allocatable_disk_gib: Math.min(alloc.diskGib, b.capacity.diskGib),
          drivers: JSON.stringify(b.drivers ?? []),
          // Nothing runs on a host until its agent heartbeats: recorded by hand it
          // waits, not-ready, for an agent that registers under its name.
          state: 'not-ready',
          pool: await resolvePool(trx, b.pool),
          info: '{}',
          last_heartbeat_at: null,
          created_at: t,
          updated_at: t,
        };
        await trx.insertInto('hosts').values(row).execute();
        await replaceLabels(trx, 'host', row.id, b.labels ?? {});
        emit({
          type: 'host.created',
          projectId: row.pool,
          resourceType: 'host',
          resourceId: row.id,
          actor: actorOf(p),
          host: row.id,
          data: { name: row.name },
        });
        return row;
      });
      return reply.code(201).send(presentHost(row));
    },
  );

  app.get(
    '/hosts/:id',
    { schema: { tags, summary: 'Show a host', params: IdParam, response: { 200: Host } } },
    async req => {
      const p = requireUser(principalOf(req));
      const h = await findHost(store.db, req.params.id);
      if (!h || !visible(p, h)) throw notFound('host', req.params.id);
      return presentHost(h);
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
      const b = req.body;
      return store.write(async ({ trx, emit }) => {
        const h = await findHost(trx, req.params.id);
        if (!h || !visible(p, h)) throw notFound('host', req.params.id);
        requireClusterAdmin(p);
        if (b.state === 'ready' && (h.state === 'down' || h.state === 'not-ready')) {
          throw conflict(`host ${h.name} is ${h.state}; it becomes ready when its agent heartbeats`);
        }
        const update: Partial<HostTable> = {
          labels: b.labels ? JSON.stringify(b.labels) : h.labels,
          region: b.topology?.region ?? h.region,
          zone: b.topology?.zone ?? h.zone,
          rack: b.topology?.rack ?? h.rack,
          pool: b.pool === undefined ? h.pool : await resolvePool(trx, b.pool),
          state: b.state ?? h.state,
          updated_at: now(),
        };
        await trx.updateTable('hosts').set(update).where('id', '=', h.id).execute();
        if (b.labels) await replaceLabels(trx, 'host', h.id, b.labels);
        emit({
          type: 'host.updated',
          projectId: update.pool ?? null,
          resourceType: 'host',
          resourceId: h.id,
          actor: actorOf(p),
          host: h.id,
          data: { fields: Object.keys(b), state: update.state },
        });
        if (b.state === 'draining' && h.state !== 'draining') {
          // Draining stops new placements at once (the scheduler takes only ready
          // hosts); the instances already here are handed to the controllers,
          // which move them, one event each.
          const held = await trx
            .selectFrom('instances')
            .select(['id', 'project_id', 'name'])
            .where('host_id', '=', h.id)
            .where('desired_state', '!=', 'deleted')
            .execute();
          for (const i of held) {
            emit({
              type: 'instance.evict-requested',
              projectId: i.project_id,
              resourceType: 'instance',
              resourceId: i.id,
              actor: actorOf(p),
              host: h.id,
              data: { host: h.id, reason: `host ${h.name} is draining` },
            });
          }
        }
        return presentHost({ ...h, ...update });
      });
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
      await store.write(async ctx => {
        const { trx, emit } = ctx;
        const h = await findHost(trx, req.params.id);
        if (!h || !visible(p, h)) throw notFound('host', req.params.id);
        requireClusterAdmin(p);
        const held = await trx.selectFrom('instances').selectAll().where('host_id', '=', h.id).execute();
        if (held.length > 0 && !req.query.force) {
          throw conflict(
            `host ${h.name} still holds ${held.length} instance(s); drain it first, or remove it with them (force) if it is dead`,
          );
        }
        if (held.length > 0 && h.state !== 'down' && h.last_heartbeat_at !== null) {
          throw conflict(
            `host ${h.name} is ${h.state}, not down: its agent still answers; drain it, or wait until it is down to remove it with its instances`,
          );
        }
        // Its instances go with it: their workloads died with the host, or its agent removes them should it come back.
        for (const row of held) await finalizeDelete(ctx, row, actorOf(p), true);
        await trx.deleteFrom('labels').where('resource_type', '=', 'host').where('resource_id', '=', h.id).execute();
        await trx.deleteFrom('hosts').where('id', '=', h.id).execute();
        emit({
          type: 'host.deleted',
          projectId: h.pool,
          resourceType: 'host',
          resourceId: h.id,
          actor: actorOf(p),
          host: h.id,
          data: { name: h.name },
        });
      });
      return reply.code(204).send(null);
    },
  );
}
