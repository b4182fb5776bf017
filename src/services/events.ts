// The event log as users read it: their own projects' events; events of no
// project (users, tokens) are for cluster admins.
import { readEvents } from '../store/events.ts';
import { getProject } from '../store/projects.ts';
import type { EventRow } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { requireRole } from './access.ts';
import type { UserPrincipal } from './auth.ts';

/** The project a reader asks to follow (by id or name), which it must be able to read. */
export async function projectOf(store: Store, p: UserPrincipal, ref: string): Promise<string> {
  const project = await getProject(store.db, ref);
  requireRole(p, project.id, 'reader', ref);
  return project.id;
}

export function mayRead(p: UserPrincipal, e: EventRow): boolean {
  if (p.clusterAdmin) return true;
  return e.project_id !== null && p.roles.has(e.project_id);
}

/** Up to `limit` events after `since` that `p` may read, of one project and one resource when given. */
export async function backlog(
  store: Store,
  p: UserPrincipal,
  o: { projectId: string | undefined; resource: string | undefined; since: number; limit: number },
): Promise<EventRow[]> {
  const projects =
    o.projectId !== undefined ? [o.projectId] : p.clusterAdmin ? ('all' as const) : [...p.roles.keys(), ''];
  return readEvents(store.db, { since: o.since, limit: o.limit, projects, resource: o.resource });
}
