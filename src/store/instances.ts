// The instances table.
import { type LabelTerm, labelsMatch } from './labels.ts';
import type { InstanceRow, InstanceTable } from './schema.ts';
import type { Db } from './store.ts';

export async function hasInstances(db: Db, projectId: string): Promise<boolean> {
  const row = await db
    .selectFrom('instances')
    .select('id')
    .where('project_id', '=', projectId)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

export async function findInstance(db: Db, id: string): Promise<InstanceRow | undefined> {
  return db.selectFrom('instances').selectAll().where('id', '=', id).executeTakeFirst();
}

/** An instance's project, for a nested host that names it as its parent. */
export async function instanceProject(db: Db, id: string): Promise<{ id: string; project_id: string } | undefined> {
  return db.selectFrom('instances').select(['id', 'project_id']).where('id', '=', id).executeTakeFirst();
}

/** Every instance a host holds. */
export async function instancesOnHost(db: Db, hostId: string): Promise<InstanceRow[]> {
  return db.selectFrom('instances').selectAll().where('host_id', '=', hostId).execute();
}

/** A host's assignments, in id order. */
export async function assignedTo(db: Db, hostId: string): Promise<InstanceRow[]> {
  return db.selectFrom('instances').selectAll().where('host_id', '=', hostId).orderBy('id').execute();
}

/** The instances on a host that are not being deleted. */
export async function liveOnHost(db: Db, hostId: string): Promise<{ id: string; project_id: string; name: string }[]> {
  return db
    .selectFrom('instances')
    .select(['id', 'project_id', 'name'])
    .where('host_id', '=', hostId)
    .where('desired_state', '!=', 'deleted')
    .execute();
}

export interface InstanceFilter {
  limit: number;
  after: string | undefined;
  /** Project ids the list may show, or 'all'. */
  projects: string[] | 'all';
  name: string | undefined;
  state: string | undefined;
  hostId: string | undefined;
  labels: LabelTerm[];
}

/** Up to limit + 1 instances in id order. */
export async function listInstances(db: Db, o: InstanceFilter): Promise<InstanceRow[]> {
  let q = db
    .selectFrom('instances')
    .selectAll()
    .orderBy('id')
    .limit(o.limit + 1);
  if (o.projects !== 'all') q = q.where('project_id', 'in', o.projects);
  if (o.after) q = q.where('id', '>', o.after);
  if (o.name !== undefined) q = q.where('name', '=', o.name);
  if (o.state !== undefined) q = q.where('state', '=', o.state);
  if (o.hostId !== undefined) q = q.where('host_id', '=', o.hostId);
  if (o.labels.length) q = q.where(eb => labelsMatch(eb, 'instance', 'instances.id', o.labels));
  return q.execute();
}

export async function insertInstance(db: Db, row: InstanceTable): Promise<void> {
  await db.insertInto('instances').values(row).execute();
}

export async function updateInstance(db: Db, id: string, update: Partial<InstanceTable>): Promise<void> {
  await db.updateTable('instances').set(update).where('id', '=', id).execute();
}

/** Deletes an instance with its group memberships and labels. */
export async function deleteInstance(db: Db, id: string): Promise<void> {
  await db.deleteFrom('instance_groups').where('instance_id', '=', id).execute();
  await db.deleteFrom('labels').where('resource_type', '=', 'instance').where('resource_id', '=', id).execute();
  await db.deleteFrom('instances').where('id', '=', id).execute();
}

/** Every pending instance, in id order. */
export async function pendingInstances(db: Db): Promise<InstanceRow[]> {
  return db.selectFrom('instances').selectAll().where('state', '=', 'pending').orderBy('id').execute();
}

/** What orders the instances of `ids` in the placement queue. */
export async function queueKeys(
  db: Db,
  ids: readonly string[],
): Promise<{ id: string; priority: number; created_at: string }[]> {
  return db
    .selectFrom('instances')
    .select(['id', 'priority', 'created_at'])
    .where('id', 'in', [...ids])
    .execute();
}

/** The instances of `ids` that exist, in id order. */
export async function instancesById(db: Db, ids: readonly string[]): Promise<InstanceRow[]> {
  return db
    .selectFrom('instances')
    .selectAll()
    .where('id', 'in', [...ids])
    .orderBy('id')
    .execute();
}

/** The instances on a host in one of `states`. */
export async function onHostIn(
  db: Db,
  hostId: string,
  states: readonly string[],
): Promise<{ id: string; project_id: string; state: string; exit_code: number | null }[]> {
  return db
    .selectFrom('instances')
    .select(['id', 'project_id', 'state', 'exit_code'])
    .where('host_id', '=', hostId)
    .where('state', 'in', [...states])
    .execute();
}

/** Marks instances lost, saying why. */
export async function markLost(db: Db, ids: readonly string[], message: string, t: string): Promise<void> {
  await db
    .updateTable('instances')
    .set({ state: 'lost', message, updated_at: t })
    .where('id', 'in', [...ids])
    .execute();
}

/** Down hosts that still hold instances in one of `states`. */
export async function downHostsHolding(db: Db, states: readonly string[]): Promise<{ id: string }[]> {
  return db
    .selectFrom('instances')
    .innerJoin('hosts', 'hosts.id', 'instances.host_id')
    .select('hosts.id')
    .distinct()
    .where('hosts.state', '=', 'down')
    .where('instances.state', 'in', [...states])
    .execute();
}
