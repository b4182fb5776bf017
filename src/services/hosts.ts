// Hosts: the places instances run. Agents register hosts themselves
// (agents.ts); cluster admins may also record, change and remove them.
import { conflict, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { HostCreate } from '../model/schemas.ts';
import { deleteHost, findHost, insertHost, listHosts, updateHost } from '../store/hosts.ts';
import { instanceProject, instancesOnHost, liveOnHost } from '../store/instances.ts';
import { type LabelTerm, replaceLabels } from '../store/labels.ts';
import { getProject } from '../store/projects.ts';
import type { HostRow, HostTable } from '../store/schema.ts';
import type { Db, Store } from '../store/store.ts';
import { actorOf, requireClusterAdmin } from './access.ts';
import type { UserPrincipal } from './auth.ts';
import { finalizeDelete } from './instances.ts';

export interface HostPatch {
  labels?: Record<string, string> | undefined;
  topology?: { region?: string | undefined; zone?: string | undefined; rack?: string | undefined } | undefined;
  pool?: string | null | undefined;
  state?: 'ready' | 'draining' | 'not-ready' | 'down' | undefined;
}

/** Shared hosts are visible to every user; dedicated ones only to their project. */
function visible(p: UserPrincipal, h: HostRow): boolean {
  return p.clusterAdmin || h.pool === null || p.roles.has(h.pool);
}

export async function resolvePool(db: Db, pool: string | null | undefined): Promise<string | null> {
  if (pool === null || pool === undefined) return null;
  return (await getProject(db, pool)).id;
}

/**
 * The instance a nested host runs inside. A host of a project's pool may only
 * name an instance of that project; the answer for one it may not name is the
 * same as for one that does not exist.
 */
export async function resolveParent(
  db: Db,
  parent: string | undefined,
  pool: string | null = null,
): Promise<string | null> {
  if (parent === undefined) return null;
  const inst = await instanceProject(db, parent);
  if (!inst || (pool !== null && inst.project_id !== pool)) throw notFound('parent instance', parent);
  return inst.id;
}

export async function list(
  store: Store,
  p: UserPrincipal,
  o: { limit: number; after: string | undefined; labels: LabelTerm[] },
): Promise<HostRow[]> {
  return listHosts(store.db, { ...o, pools: p.clusterAdmin ? 'all' : [...p.roles.keys(), ''] });
}

export async function create(store: Store, p: UserPrincipal, b: HostCreate): Promise<HostTable> {
  return store.write(async ({ trx, emit }) => {
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
    await insertHost(trx, row);
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
}

export async function show(store: Store, p: UserPrincipal, ref: string): Promise<HostRow> {
  const h = await findHost(store.db, ref);
  if (!h || !visible(p, h)) throw notFound('host', ref);
  return h;
}

export async function update(store: Store, p: UserPrincipal, ref: string, b: HostPatch): Promise<HostRow> {
  return store.write(async ({ trx, emit }) => {
    const h = await findHost(trx, ref);
    if (!h || !visible(p, h)) throw notFound('host', ref);
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
    await updateHost(trx, h.id, update);
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
      for (const i of await liveOnHost(trx, h.id)) {
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
    return { ...h, ...update };
  });
}

/** Removes a host that holds no instances, or with `force` a dead one together with its instances. */
export async function remove(store: Store, p: UserPrincipal, ref: string, force: boolean): Promise<void> {
  await store.write(async ctx => {
    const { trx, emit } = ctx;
    const h = await findHost(trx, ref);
    if (!h || !visible(p, h)) throw notFound('host', ref);
    requireClusterAdmin(p);
    const held = await instancesOnHost(trx, h.id);
    if (held.length > 0 && !force) {
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
    await deleteHost(trx, h.id);
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
}
