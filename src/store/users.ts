// The users table.
import { hasPrefix } from '../lib/ids.ts';
import type { Role } from '../model/kinds.ts';
import type { UserRow } from './schema.ts';
import type { Db } from './store.ts';

/** A user by id or by name. */
export async function findUser(db: Db, ref: string): Promise<UserRow | undefined> {
  const col = hasPrefix(ref, 'usr') ? 'id' : 'name';
  return db.selectFrom('users').selectAll().where(col, '=', ref).executeTakeFirst();
}

export async function getUserById(db: Db, id: string): Promise<UserRow> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

/** Up to limit + 1 users in id order; only `only` when given. */
export async function listUsers(
  db: Db,
  o: { limit: number; after: string | undefined; only?: string | undefined },
): Promise<UserRow[]> {
  let q = db
    .selectFrom('users')
    .selectAll()
    .orderBy('id')
    .limit(o.limit + 1);
  if (o.after) q = q.where('id', '>', o.after);
  if (o.only !== undefined) q = q.where('id', '=', o.only);
  return q.execute();
}

export async function insertUser(db: Db, row: UserRow): Promise<void> {
  await db.insertInto('users').values(row).execute();
}

export async function deleteUser(db: Db, id: string): Promise<void> {
  await db.deleteFrom('users').where('id', '=', id).execute();
}

/** The projects each of `userIds` is a member of, by project name. */
export async function projectsOf(
  db: Db,
  userIds: readonly string[],
): Promise<{ user_id: string; projectId: string; projectName: string; role: Role }[]> {
  const rows = await db
    .selectFrom('memberships')
    .innerJoin('projects', 'projects.id', 'memberships.project_id')
    .select(['memberships.user_id', 'projects.id as projectId', 'projects.name as projectName', 'memberships.role'])
    .where('memberships.user_id', 'in', [...userIds])
    .orderBy('projects.name')
    .execute();
  return rows.map(r => ({ ...r, role: r.role as Role }));
}

/** A user's roles, by project id. */
export async function rolesOf(db: Db, userId: string): Promise<Map<string, Role>> {
  const rows = await db
    .selectFrom('memberships')
    .select(['project_id', 'role'])
    .where('user_id', '=', userId)
    .execute();
  return new Map(rows.map(m => [m.project_id, m.role as Role]));
}

export async function findUserById(db: Db, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Whether any user exists (a fresh install has none). */
export async function anyUser(db: Db): Promise<boolean> {
  return (await db.selectFrom('users').select('id').limit(1).executeTakeFirst()) !== undefined;
}
