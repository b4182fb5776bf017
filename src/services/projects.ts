// Projects: tenancy roots, their quotas and their members.
import { conflict, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { Role } from '../model/kinds.ts';
import type { ProjectCreate } from '../model/schemas.ts';
import { hasDeployments } from '../store/deployments.ts';
import { hasInstances } from '../store/instances.ts';
import type { LabelTerm } from '../store/labels.ts';
import { replaceLabels } from '../store/labels.ts';
import {
  deleteMembership,
  deleteProject,
  findMembership,
  findProject,
  getProject,
  insertMembership,
  insertProject,
  listMembers,
  listProjects,
  type MemberOut,
  newProjectRow,
  ping,
  setRole,
  updateProject,
} from '../store/projects.ts';
import type { ProjectRow } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { findUser } from '../store/users.ts';
import { actorOf, requireClusterAdmin, requireRole } from './access.ts';
import type { UserPrincipal } from './auth.ts';

export interface ProjectPatch {
  description?: string | undefined;
  labels?: Record<string, string> | undefined;
  quota?: Partial<Record<'instances' | 'vcpus' | 'memoryMib' | 'diskGib', number | null>> | undefined;
  placementStrategy?: 'binpack' | 'spread' | undefined;
}

export async function list(
  store: Store,
  p: UserPrincipal,
  o: { limit: number; after: string | undefined; labels: LabelTerm[] },
): Promise<ProjectRow[]> {
  return listProjects(store.db, { ...o, ids: p.clusterAdmin ? 'all' : [...p.roles.keys(), ''] });
}

export async function create(store: Store, p: UserPrincipal, b: ProjectCreate): Promise<ProjectRow> {
  return store.write(async ({ trx, emit }) => {
    if (await findProject(trx, b.name)) throw conflict(`project ${JSON.stringify(b.name)} already exists`);
    const t = now();
    const id = newId('prj');
    const values = newProjectRow(id, b.name, t, {
      description: b.description,
      labels: b.labels,
      quota: b.quota,
      placementStrategy: b.placementStrategy,
    });
    await insertProject(trx, values);
    await replaceLabels(trx, 'project', id, b.labels ?? {});
    emit({
      type: 'project.created',
      projectId: id,
      resourceType: 'project',
      resourceId: id,
      actor: actorOf(p),
      data: { name: b.name },
    });
    return values;
  });
}

export async function show(store: Store, p: UserPrincipal, ref: string): Promise<ProjectRow> {
  const row = await findProject(store.db, ref);
  if (!row) throw notFound('project', ref);
  requireRole(p, row.id, 'reader', ref);
  return row;
}

export async function update(store: Store, p: UserPrincipal, ref: string, b: ProjectPatch): Promise<ProjectRow> {
  return store.write(async ({ trx, emit }) => {
    const row = await findProject(trx, ref);
    if (!row) throw notFound('project', ref);
    requireRole(p, row.id, 'admin', ref);
    if (b.quota !== undefined) requireClusterAdmin(p);
    const q = b.quota ?? {};
    const update = {
      description: b.description ?? row.description,
      labels: b.labels ? JSON.stringify(b.labels) : row.labels,
      quota_instances: q.instances === undefined ? row.quota_instances : q.instances,
      quota_vcpus: q.vcpus === undefined ? row.quota_vcpus : q.vcpus,
      quota_memory_mib: q.memoryMib === undefined ? row.quota_memory_mib : q.memoryMib,
      quota_disk_gib: q.diskGib === undefined ? row.quota_disk_gib : q.diskGib,
      placement_strategy: b.placementStrategy ?? row.placement_strategy,
      updated_at: now(),
    };
    await updateProject(trx, row.id, update);
    if (b.labels) await replaceLabels(trx, 'project', row.id, b.labels);
    emit({
      type: 'project.updated',
      projectId: row.id,
      resourceType: 'project',
      resourceId: row.id,
      actor: actorOf(p),
      data: { fields: Object.keys(b) },
    });
    return { ...row, ...update };
  });
}

/** Deletes an empty project (cluster admins). */
export async function remove(store: Store, p: UserPrincipal, ref: string): Promise<void> {
  await store.write(async ({ trx, emit }) => {
    const row = await findProject(trx, ref);
    if (!row || (!p.clusterAdmin && !p.roles.has(row.id))) throw notFound('project', ref);
    requireClusterAdmin(p);
    if (await hasDeployments(trx, row.id))
      throw conflict(`project ${row.name} still has deployments; delete them first`);
    if (await hasInstances(trx, row.id)) throw conflict(`project ${row.name} still has instances; delete them first`);
    await deleteProject(trx, row.id);
    emit({
      type: 'project.deleted',
      projectId: row.id,
      resourceType: 'project',
      resourceId: row.id,
      actor: actorOf(p),
      data: { name: row.name },
    });
  });
}

export async function members(store: Store, p: UserPrincipal, ref: string): Promise<MemberOut[]> {
  const row = await getProject(store.db, ref);
  requireRole(p, row.id, 'reader', ref);
  return listMembers(store.db, row.id);
}

/** Sets a user's role in a project (project admins). */
export async function setMember(
  store: Store,
  p: UserPrincipal,
  projectRef: string,
  userRef: string,
  role: Role,
): Promise<MemberOut> {
  return store.write(async ({ trx, emit }) => {
    const project = await getProject(trx, projectRef);
    requireRole(p, project.id, 'admin', projectRef);
    const user = await findUser(trx, userRef);
    if (!user) throw notFound('user', userRef);
    const t = now();
    const existing = await findMembership(trx, project.id, user.id);
    if (existing) await setRole(trx, project.id, user.id, role);
    else await insertMembership(trx, { project_id: project.id, user_id: user.id, role, created_at: t });
    emit({
      type: 'member.set',
      projectId: project.id,
      resourceType: 'project',
      resourceId: project.id,
      actor: actorOf(p),
      data: { user: user.name, role },
    });
    return { userId: user.id, userName: user.name, role, createdAt: existing?.created_at ?? t };
  });
}

/** Removes a user from a project (project admins). */
export async function removeMember(store: Store, p: UserPrincipal, projectRef: string, userRef: string): Promise<void> {
  await store.write(async ({ trx, emit }) => {
    const project = await getProject(trx, projectRef);
    requireRole(p, project.id, 'admin', projectRef);
    // One answer for a user who does not exist and one who is not a member:
    // removing members tells a project admin nothing about other users.
    const user = await findUser(trx, userRef);
    if (!user) throw notFound('member', userRef);
    if (!(await deleteMembership(trx, project.id, user.id))) throw notFound('member', userRef);
    emit({
      type: 'member.removed',
      projectId: project.id,
      resourceType: 'project',
      resourceId: project.id,
      actor: actorOf(p),
      data: { user: user.name },
    });
  });
}

/** Whether the store answers (the health check). */
export async function storeAnswers(store: Store): Promise<void> {
  await ping(store.db);
}
