// Placement groups, like Nova's server groups but at any level of the
// topology. An instance names the groups it belongs to; the scheduler keeps
// their rules (affinity, anti-affinity, spread with a max skew) at the
// group's level: host, physical-host (through nested VM hosts), rack, zone or region.
import { conflict } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { Level } from '../model/topology.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { deleteGroup, findGroup, hasMembers, insertGroup, listGroups, memberCounts } from '../store/groups.ts';
import { getProject } from '../store/projects.ts';
import type { PlacementGroupRow } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { actorOf, listScope, requireRole, visibleRow } from './access.ts';
import type { UserPrincipal } from './auth.ts';

export interface GroupCreate {
  project: string;
  name: string;
  policy: 'affinity' | 'anti-affinity' | 'spread';
  strength?: 'hard' | 'soft' | undefined;
  level: Level;
  maxSkew?: number | undefined;
}

export async function members(store: Store, ids: readonly string[]): Promise<Map<string, number>> {
  return memberCounts(store.db, ids);
}

export async function list(
  store: Store,
  p: UserPrincipal,
  o: { project: string | undefined; limit: number; after: string | undefined },
): Promise<PlacementGroupRow[]> {
  const projects = await listScope(store.db, p, o.project);
  return listGroups(store.db, { limit: o.limit, after: o.after, projects });
}

export async function create(store: Store, p: UserPrincipal, b: GroupCreate): Promise<PlacementGroupRow> {
  const project = await getProject(store.db, b.project);
  requireRole(p, project.id, 'member', b.project);
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
      await insertGroup(trx, row);
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
  return row;
}

/** A group the caller may see, with at least `role` in its project. */
export async function load(
  store: Store,
  p: UserPrincipal,
  id: string,
  role: 'reader' | 'member',
): Promise<PlacementGroupRow> {
  return visibleRow(p, await findGroup(store.db, id), 'group', id, role);
}

export async function remove(store: Store, p: UserPrincipal, id: string): Promise<void> {
  const row = await load(store, p, id, 'member');
  await store.write(async ({ trx, emit }) => {
    if (await hasMembers(trx, row.id)) throw conflict(`group ${row.name} still has members; delete them first`);
    await deleteGroup(trx, row.id);
    emit({
      type: 'group.deleted',
      projectId: row.project_id,
      resourceType: 'group',
      resourceId: row.id,
      actor: actorOf(p),
      data: { name: row.name },
    });
  });
}
