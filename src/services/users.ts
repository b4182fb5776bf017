// Users and what they are told about themselves.
import { ApiError, conflict, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { UserOut } from '../model/schemas.ts';
import type { Role } from '../model/kinds.ts';
import { getProject, insertMembership } from '../store/projects.ts';
import type { UserRow } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { deleteUser, findUser, getUserById, insertUser, listUsers, projectsOf } from '../store/users.ts';
import { actorOf, requireClusterAdmin } from './access.ts';
import type { UserPrincipal } from './auth.ts';

export interface UserCreate {
  name: string;
  clusterAdmin?: boolean | undefined;
  projects?: { project: string; role: Role }[] | undefined;
}

/** Users with the projects they are members of. */
export async function withProjects(store: Store, users: UserRow[]): Promise<UserOut[]> {
  if (users.length === 0) return [];
  const ms = await projectsOf(
    store.db,
    users.map(u => u.id),
  );
  return users.map(u => ({
    id: u.id,
    name: u.name,
    clusterAdmin: u.cluster_admin === 1,
    projects: ms
      .filter(m => m.user_id === u.id)
      .map(m => ({ projectId: m.projectId, projectName: m.projectName, role: m.role })),
    createdAt: u.created_at,
  }));
}

/** The caller's own projects. */
export async function whoami(store: Store, p: UserPrincipal): Promise<UserOut['projects']> {
  const user = await getUserById(store.db, p.userId);
  const [out] = await withProjects(store, [user]);
  return out?.projects ?? [];
}

export async function list(
  store: Store,
  p: UserPrincipal,
  o: { limit: number; after: string | undefined },
): Promise<UserRow[]> {
  return listUsers(store.db, { ...o, only: p.clusterAdmin ? undefined : p.userId });
}

export async function create(store: Store, p: UserPrincipal, b: UserCreate): Promise<UserOut> {
  const row = await store.write(async ({ trx, emit }) => {
    if (await findUser(trx, b.name)) throw conflict(`user ${JSON.stringify(b.name)} already exists`);
    const t = now();
    const user = { id: newId('usr'), name: b.name, cluster_admin: b.clusterAdmin ? 1 : 0, created_at: t };
    await insertUser(trx, user);
    const seen = new Set<string>();
    for (const m of b.projects ?? []) {
      const project = await getProject(trx, m.project);
      if (seen.has(project.id)) throw new ApiError('invalid_request', `project ${m.project} is listed twice`);
      seen.add(project.id);
      await insertMembership(trx, { project_id: project.id, user_id: user.id, role: m.role, created_at: t });
    }
    emit({
      type: 'user.created',
      projectId: null,
      resourceType: 'user',
      resourceId: user.id,
      actor: actorOf(p),
      data: { name: user.name },
    });
    return user;
  });
  const [out] = await withProjects(store, [row]);
  return out!;
}

export async function show(store: Store, p: UserPrincipal, ref: string): Promise<UserOut> {
  const user = await findUser(store.db, ref);
  if (!user || (!p.clusterAdmin && user.id !== p.userId)) throw notFound('user', ref);
  const [out] = await withProjects(store, [user]);
  return out!;
}

export async function remove(store: Store, p: UserPrincipal, ref: string): Promise<void> {
  await store.write(async ({ trx, emit }) => {
    const user = await findUser(trx, ref);
    if (!user || (!p.clusterAdmin && user.id !== p.userId)) throw notFound('user', ref);
    requireClusterAdmin(p);
    if (user.id === p.userId) throw conflict('you cannot delete yourself');
    await deleteUser(trx, user.id);
    emit({
      type: 'user.deleted',
      projectId: null,
      resourceType: 'user',
      resourceId: user.id,
      actor: actorOf(p),
      data: { name: user.name },
    });
  });
}
