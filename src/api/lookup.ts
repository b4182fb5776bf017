// Finding resources by id or by name, as the CLI lets users type either.
import { notFound } from '../lib/errors.ts';
import { hasPrefix } from '../lib/ids.ts';
import type { Db } from '../store/db.ts';
import type { HostRow, ProjectRow, UserRow } from '../store/schema.ts';
import type { Trx } from '../store/store.ts';
import { requireRole } from './access.ts';
import type { UserPrincipal } from './auth.ts';

type Q = Db | Trx;

export async function findProject(db: Q, ref: string): Promise<ProjectRow | undefined> {
  const col = hasPrefix(ref, 'prj') ? 'id' : 'name';
  return db.selectFrom('projects').selectAll().where(col, '=', ref).executeTakeFirst();
}

export async function getProject(db: Q, ref: string): Promise<ProjectRow> {
  const p = await findProject(db, ref);
  if (!p) throw notFound('project', ref);
  return p;
}

export async function findUser(db: Q, ref: string): Promise<UserRow | undefined> {
  const col = hasPrefix(ref, 'usr') ? 'id' : 'name';
  return db.selectFrom('users').selectAll().where(col, '=', ref).executeTakeFirst();
}

export async function findHost(db: Q, ref: string): Promise<HostRow | undefined> {
  const col = hasPrefix(ref, 'hst') ? 'id' : 'name';
  return db.selectFrom('hosts').selectAll().where(col, '=', ref).executeTakeFirst();
}

/**
 * The projects a list may show: the one asked for (which the caller must be
 * able to read), or every project the caller sees ('all' for cluster admins;
 * '' stands for none, so the list is empty rather than unfiltered).
 */
export async function listScope(db: Q, p: UserPrincipal, projectRef: string | undefined): Promise<string[] | 'all'> {
  if (projectRef !== undefined) {
    const project = await getProject(db, projectRef);
    requireRole(p, project.id, 'reader', projectRef);
    return [project.id];
  }
  return p.clusterAdmin ? 'all' : [...p.roles.keys(), ''];
}
