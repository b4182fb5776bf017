// The placement_groups table and instances' membership of groups.
import type { PlacementGroupRow } from './schema.ts';
import type { Db } from './store.ts';

/** How many instances each group holds. */
export async function memberCounts(db: Db, ids: readonly string[]): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .selectFrom('instance_groups')
    .select(['group_id', eb => eb.fn.countAll<number>().as('n')])
    .where('group_id', 'in', [...ids])
    .groupBy('group_id')
    .execute();
  return new Map(rows.map(r => [r.group_id, Number(r.n)]));
}

/** Up to limit + 1 groups of `projects` ('all': every project) in id order. */
export async function listGroups(
  db: Db,
  o: { limit: number; after: string | undefined; projects: string[] | 'all' },
): Promise<PlacementGroupRow[]> {
  let q = db
    .selectFrom('placement_groups')
    .selectAll()
    .orderBy('id')
    .limit(o.limit + 1);
  if (o.projects !== 'all') q = q.where('project_id', 'in', o.projects);
  if (o.after) q = q.where('id', '>', o.after);
  return q.execute();
}

export async function findGroup(db: Db, id: string): Promise<PlacementGroupRow | undefined> {
  return db.selectFrom('placement_groups').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function insertGroup(db: Db, row: PlacementGroupRow): Promise<void> {
  await db.insertInto('placement_groups').values(row).execute();
}

export async function hasMembers(db: Db, id: string): Promise<boolean> {
  const row = await db
    .selectFrom('instance_groups')
    .select('instance_id')
    .where('group_id', '=', id)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

export async function deleteGroup(db: Db, id: string): Promise<void> {
  await db.deleteFrom('placement_groups').where('id', '=', id).execute();
}

/** Group names or ids of a project -> the groups they name. */
export async function groupsByRef(
  db: Db,
  projectId: string,
  refs: readonly string[],
): Promise<{ id: string; name: string }[]> {
  return db
    .selectFrom('placement_groups')
    .select(['id', 'name'])
    .where('project_id', '=', projectId)
    .where(eb => eb.or([eb('id', 'in', [...refs]), eb('name', 'in', [...refs])]))
    .execute();
}

export async function addToGroups(db: Db, instanceId: string, groupIds: readonly string[]): Promise<void> {
  if (groupIds.length === 0) return;
  await db
    .insertInto('instance_groups')
    .values(groupIds.map(g => ({ instance_id: instanceId, group_id: g })))
    .execute();
}
