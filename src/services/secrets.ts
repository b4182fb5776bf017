// Secrets of a project, referenced from instances' environment as
// {"secret": NAME}. Values are sealed at rest (secret-box.ts), never returned
// by the API, never in events; an agent gets them resolved, for the instances
// assigned to its host only.
import { ApiError, conflict, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { getProject } from '../store/projects.ts';
import type { InstanceRow, SecretRow } from '../store/schema.ts';
import {
  deleteSecret,
  existingNames,
  findSecret,
  insertSecret,
  instancesUsing,
  listSecrets,
  secretsNamed,
  updateSecretValue,
} from '../store/secrets.ts';
import type { Db, Store } from '../store/store.ts';
import { actorOf, listScope, requireRole, visibleRow } from './access.ts';
import type { UserPrincipal } from './auth.ts';
import type { SecretBox } from './secret-box.ts';

export type EnvValue = string | { secret: string };

/** The secret names an environment refers to. */
export function secretNames(env: Record<string, EnvValue>): string[] {
  return [...new Set(Object.values(env).flatMap(v => (typeof v === 'string' ? [] : [v.secret])))];
}

/** A refused create: the references that name no secret of the project (422, nothing stored). */
export async function checkSecretRefs(db: Db, projectId: string, env: Record<string, EnvValue>): Promise<void> {
  const names = secretNames(env);
  if (names.length === 0) return;
  const found = await existingNames(db, projectId, names);
  const missing = names.filter(n => !found.has(n));
  if (missing.length > 0)
    throw new ApiError('unprocessable', `no secret ${missing.map(m => JSON.stringify(m)).join(', ')} in this project`, {
      missing,
    });
}

/** Each instance's environment with its secrets' values in place of their references. */
export async function resolveEnv(
  db: Db,
  box: SecretBox,
  rows: readonly InstanceRow[],
): Promise<Map<string, Record<string, string>>> {
  const envs = rows.map(r => [r, JSON.parse(r.env) as Record<string, EnvValue>] as const);
  const wanted = envs.filter(([, env]) => secretNames(env).length > 0);
  const values = new Map<string, string>();
  if (wanted.length > 0) {
    const projects = [...new Set(wanted.map(([r]) => r.project_id))];
    const names = [...new Set(wanted.flatMap(([, env]) => secretNames(env)))];
    const secrets = await secretsNamed(db, projects, names);
    for (const s of secrets) values.set(`${s.project_id}/${s.name}`, box.open(s.ciphertext, s.id));
  }
  const out = new Map<string, Record<string, string>>();
  for (const [r, env] of envs) {
    const resolved: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) {
      if (typeof v === 'string') resolved[k] = v;
      else {
        const value = values.get(`${r.project_id}/${v.secret}`);
        if (value !== undefined) resolved[k] = value;
      }
    }
    out.set(r.id, resolved);
  }
  return out;
}

export async function list(
  store: Store,
  p: UserPrincipal,
  o: { project: string | undefined; name: string | undefined; limit: number; after: string | undefined },
): Promise<SecretRow[]> {
  const projects = await listScope(store.db, p, o.project);
  return listSecrets(store.db, { limit: o.limit, after: o.after, projects, name: o.name });
}

export async function create(
  store: Store,
  box: SecretBox,
  p: UserPrincipal,
  b: { project: string; name: string; value: string },
): Promise<SecretRow> {
  const project = await getProject(store.db, b.project);
  requireRole(p, project.id, 'member', b.project);
  const t = now();
  const id = newId('sec');
  const row: SecretRow = {
    id,
    project_id: project.id,
    name: b.name,
    ciphertext: box.seal(b.value, id),
    created_at: t,
    updated_at: t,
  };
  await store.write(async ({ trx, emit }) => {
    try {
      await insertSecret(trx, row);
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`secret ${JSON.stringify(row.name)} already exists in this project`);
      throw err;
    }
    emit({
      type: 'secret.created',
      projectId: project.id,
      resourceType: 'secret',
      resourceId: id,
      actor: actorOf(p),
      data: { name: row.name },
    });
  });
  return row;
}

/** A secret the caller may see, with at least `role` in its project. */
export async function load(store: Store, p: UserPrincipal, id: string, role: 'reader' | 'member'): Promise<SecretRow> {
  return visibleRow(p, await findSecret(store.db, id), 'secret', id, role);
}

export async function update(
  store: Store,
  box: SecretBox,
  p: UserPrincipal,
  id: string,
  value: string,
): Promise<SecretRow> {
  const row = await load(store, p, id, 'member');
  const updated = { ...row, ciphertext: box.seal(value, row.id), updated_at: now() };
  await store.write(async ({ trx, emit }) => {
    if (!(await updateSecretValue(trx, row.id, updated.ciphertext, updated.updated_at)))
      throw notFound('secret', row.id);
    emit({
      type: 'secret.updated',
      projectId: row.project_id,
      resourceType: 'secret',
      resourceId: row.id,
      actor: actorOf(p),
      data: { name: row.name },
    });
  });
  return updated;
}

/** Deletes a secret no instance refers to. */
export async function remove(store: Store, p: UserPrincipal, id: string): Promise<void> {
  const row = await load(store, p, id, 'member');
  await store.write(async ({ trx, emit }) => {
    const users = await instancesUsing(trx, row.project_id, row.name);
    if (users.length > 0)
      throw conflict(`secret ${row.name} is used by instance(s) ${users.join(', ')}; delete them first`);
    await deleteSecret(trx, row.id);
    emit({
      type: 'secret.deleted',
      projectId: row.project_id,
      resourceType: 'secret',
      resourceId: row.id,
      actor: actorOf(p),
      data: { name: row.name },
    });
  });
}
