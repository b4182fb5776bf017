// Authorization rules. A project the caller cannot see answers 404, exactly
// like one that does not exist; a project it can see but not change answers 403.
import { ApiError, notFound } from '../lib/errors.ts';
import type { Role } from '../model/kinds.ts';
import { getProject } from '../store/projects.ts';
import type { Db } from '../store/store.ts';
import type { AgentPrincipal, Principal, UserPrincipal } from './auth.ts';

const rank: Record<Role, number> = { reader: 1, member: 2, admin: 3 };

export function requireUser(p: Principal): UserPrincipal {
  if (p.kind !== 'user') throw new ApiError('forbidden', 'agent credentials cannot call the user API');
  return p;
}

export function requireAgent(p: Principal): AgentPrincipal {
  if (p.kind !== 'agent') throw new ApiError('forbidden', 'this route is for host agents');
  return p;
}

export function requireClusterAdmin(p: Principal): UserPrincipal {
  const u = requireUser(p);
  if (!u.clusterAdmin) throw new ApiError('forbidden', 'this action needs the cluster-admin role');
  return u;
}

export function canSee(p: UserPrincipal, projectId: string): boolean {
  return p.clusterAdmin || p.roles.has(projectId);
}

/** Throws 404 when the project is invisible to the caller, 403 when the role is too low. */
export function requireRole(
  p: UserPrincipal,
  projectId: string,
  needed: Role,
  ref = projectId,
  what = 'project',
): void {
  if (p.clusterAdmin) return;
  const role = p.roles.get(projectId);
  if (!role) throw notFound(what, ref);
  if (rank[role] < rank[needed]) {
    throw new ApiError('forbidden', `this action needs the ${needed} role in the project; you have ${role}`);
  }
}

/**
 * A project's resource the caller may act on with `needed`: 404 when it is
 * missing or in a project the caller cannot see, 403 when the role is too low.
 */
export function visibleRow<T extends { project_id: string }>(
  p: UserPrincipal,
  row: T | undefined,
  what: string,
  ref: string,
  needed: Role,
): T {
  if (!row || !canSee(p, row.project_id)) throw notFound(what, ref);
  requireRole(p, row.project_id, needed, ref, what);
  return row;
}

export function visibleProjects(p: UserPrincipal): string[] | 'all' {
  return p.clusterAdmin ? 'all' : [...p.roles.keys()];
}

export const actorOf = (p: Principal): string => (p.kind !== 'user' ? `agent:${p.name}` : `user:${p.name}`);

/**
 * The projects a list may show: the one asked for (which the caller must be
 * able to read), or every project the caller sees ('all' for cluster admins;
 * '' stands for none, so the list is empty rather than unfiltered).
 */
export async function listScope(db: Db, p: UserPrincipal, projectRef: string | undefined): Promise<string[] | 'all'> {
  if (projectRef !== undefined) {
    const project = await getProject(db, projectRef);
    requireRole(p, project.id, 'reader', projectRef);
    return [project.id];
  }
  return p.clusterAdmin ? 'all' : [...p.roles.keys(), ''];
}
