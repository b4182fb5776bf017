// The projects table and their members.
import { sql } from 'kysely';
import { notFound } from '../lib/errors.ts';
import { hasPrefix } from '../lib/ids.ts';
import type { Role } from '../model/kinds.ts';
import { type LabelTerm, labelsMatch } from './labels.ts';
import type { MembershipRow, ProjectRow } from './schema.ts';
import type { Db } from './store.ts';

/** A project by id or by name. */
export async function findProject(db: Db, ref: string): Promise<ProjectRow | undefined> {
  const col = hasPrefix(ref, 'prj') ? 'id' : 'name';
  return db.selectFrom('projects').selectAll().where(col, '=', ref).executeTakeFirst();
}

export async function getProject(db: Db, ref: string): Promise<ProjectRow> {
  const p = await findProject(db, ref);
  if (!p) throw notFound('project', ref);
  return p;
}

/** A new project's row: no usage yet, and null (unlimited) for any quota not given. */
export function newProjectRow(
  id: string,
  name: string,
  t: string,
  o: {
    description?: string | undefined;
    labels?: Record<string, string> | undefined;
    quota?: Partial<Record<'instances' | 'vcpus' | 'memoryMib' | 'diskGib', number | null>> | undefined;
    placementStrategy?: 'binpack' | 'spread' | undefined;
  } = {},
): ProjectRow {
  return {
    id,
    name,
    description: o.description ?? '',
    labels: JSON.stringify(o.labels ?? {}),
    quota_instances: o.quota?.instances ?? null,
    quota_vcpus: o.quota?.vcpus ?? null,
    quota_memory_mib: o.quota?.memoryMib ?? null,
    quota_disk_gib: o.quota?.diskGib ?? null,
    used_instances: 0,
    used_vcpus: 0,
    used_memory_mib: 0,
    used_disk_gib: 0,
    created_at: t,
    updated_at: t,
    placement_strategy: o.placementStrategy ?? 'binpack',
  };
}

export interface ProjectPage {
  limit: number;
  after: string | undefined;
  /** Project ids the list may show, or 'all'. */
  ids: string[] | 'all';
  labels: LabelTerm[];
}

/** Up to limit + 1 projects in id order (the extra one tells there is a next page). */
export async function listProjects(db: Db, o: ProjectPage): Promise<ProjectRow[]> {
  let q = db
    .selectFrom('projects')
    .selectAll()
    .orderBy('id')
    .limit(o.limit + 1);
  if (o.after) q = q.where('id', '>', o.after);
  if (o.ids !== 'all') q = q.where('id', 'in', o.ids);
  if (o.labels.length) q = q.where(eb => labelsMatch(eb, 'project', 'projects.id', o.labels));
  return q.execute();
}

export async function insertProject(db: Db, row: ProjectRow): Promise<void> {
  await db.insertInto('projects').values(row).execute();
}

export async function updateProject(db: Db, id: string, update: Partial<ProjectRow>): Promise<void> {
  await db.updateTable('projects').set(update).where('id', '=', id).execute();
}

/** Deletes a project and its labels. */
export async function deleteProject(db: Db, id: string): Promise<void> {
  await db.deleteFrom('labels').where('resource_type', '=', 'project').where('resource_id', '=', id).execute();
  await db.deleteFrom('projects').where('id', '=', id).execute();
}

export interface MemberOut {
  userId: string;
  userName: string;
  role: Role;
  createdAt: string;
}

/** A project's members, by user name. */
export async function listMembers(db: Db, projectId: string): Promise<MemberOut[]> {
  const rows = await db
    .selectFrom('memberships')
    .innerJoin('users', 'users.id', 'memberships.user_id')
    .select(['users.id as userId', 'users.name as userName', 'memberships.role', 'memberships.created_at as createdAt'])
    .where('memberships.project_id', '=', projectId)
    .orderBy('users.name')
    .execute();
  return rows.map(r => ({ ...r, role: r.role as Role }));
}

export async function findMembership(db: Db, projectId: string, userId: string): Promise<MembershipRow | undefined> {
  return db
    .selectFrom('memberships')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
}

export async function setRole(db: Db, projectId: string, userId: string, role: Role): Promise<void> {
  await db
    .updateTable('memberships')
    .set({ role })
    .where('project_id', '=', projectId)
    .where('user_id', '=', userId)
    .execute();
}

export async function insertMembership(db: Db, row: MembershipRow): Promise<void> {
  await db.insertInto('memberships').values(row).execute();
}

/** Removes a membership; false when there was none. */
export async function deleteMembership(db: Db, projectId: string, userId: string): Promise<boolean> {
  const res = await db
    .deleteFrom('memberships')
    .where('project_id', '=', projectId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return Number(res.numDeletedRows) > 0;
}

/** A cheap read that answers only when the database does. */
export async function ping(db: Db): Promise<void> {
  await db.selectFrom('projects').select('id').limit(1).execute();
}

export interface Resources {
  vcpus: number;
  memoryMib: number;
  diskGib: number;
}

/**
 * Takes one instance's resources from the project's quota, if they fit: one
 * conditional UPDATE checks and takes at once, so concurrent creations can
 * never overshoot it, on SQLite or PostgreSQL alike. False when they do not fit.
 */
export async function takeQuota(db: Db, projectId: string, r: Resources): Promise<boolean> {
  const res = await db
    .updateTable('projects')
    .set(eb => ({
      used_instances: eb('used_instances', '+', 1),
      used_vcpus: eb('used_vcpus', '+', r.vcpus),
      used_memory_mib: eb('used_memory_mib', '+', r.memoryMib),
      used_disk_gib: eb('used_disk_gib', '+', r.diskGib),
    }))
    .where('id', '=', projectId)
    .where(sql<boolean>`(quota_instances is null or used_instances + 1 <= quota_instances)`)
    .where(sql<boolean>`(quota_vcpus is null or used_vcpus + ${r.vcpus} <= quota_vcpus)`)
    .where(sql<boolean>`(quota_memory_mib is null or used_memory_mib + ${r.memoryMib} <= quota_memory_mib)`)
    .where(sql<boolean>`(quota_disk_gib is null or used_disk_gib + ${r.diskGib} <= quota_disk_gib)`)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** Gives one instance's resources back to the project's quota. */
export async function giveQuota(db: Db, projectId: string, r: Resources): Promise<void> {
  await db
    .updateTable('projects')
    .set(eb => ({
      used_instances: eb('used_instances', '-', 1),
      used_vcpus: eb('used_vcpus', '-', r.vcpus),
      used_memory_mib: eb('used_memory_mib', '-', r.memoryMib),
      used_disk_gib: eb('used_disk_gib', '-', r.diskGib),
    }))
    .where('id', '=', projectId)
    .execute();
}

export async function getProjectById(db: Db, id: string): Promise<ProjectRow> {
  return db.selectFrom('projects').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}
