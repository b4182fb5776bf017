// Secrets of a project, referenced from instances' environment as
// {"secret": NAME}. Values are sealed at rest (secret-box.ts), never returned
// by the API, never in events; an agent gets them resolved, for the instances
// assigned to its host only.
import { ApiError } from '../lib/errors.ts';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { Trx } from '../store/store.ts';
import type { InstanceRow } from '../store/schema.ts';
import type { SecretBox } from './secret-box.ts';

export type EnvValue = string | { secret: string };

/** The secret names an environment refers to. */
export function secretNames(env: Record<string, EnvValue>): string[] {
  return [...new Set(Object.values(env).flatMap(v => (typeof v === 'string' ? [] : [v.secret])))];
}

/** A refused create: the references that name no secret of the project (422, nothing stored). */
export async function checkSecretRefs(trx: Trx, projectId: string, env: Record<string, EnvValue>): Promise<void> {
  const names = secretNames(env);
  if (names.length === 0) return;
  const found = new Set(
    (
      await trx
        .selectFrom('secrets')
        .select('name')
        .where('project_id', '=', projectId)
        .where('name', 'in', names)
        .execute()
    ).map(r => r.name),
  );
  const missing = names.filter(n => !found.has(n));
  if (missing.length > 0)
    throw new ApiError('unprocessable', `no secret ${missing.map(m => JSON.stringify(m)).join(', ')} in this project`, {
      missing,
    });
}

/** The SQL LIKE pattern of an environment that refers to secret `name` (a plain value's quotes are escaped in JSON, so it never matches). */
export const refersTo = (name: string): string => `%${JSON.stringify({ secret: name })}%`;

/** Each instance's environment with its secrets' values in place of their references. */
export async function resolveEnv(
  trx: Trx | Kysely<Database>,
  box: SecretBox,
  rows: readonly InstanceRow[],
): Promise<Map<string, Record<string, string>>> {
  const envs = rows.map(r => [r, JSON.parse(r.env) as Record<string, EnvValue>] as const);
  const wanted = envs.filter(([, env]) => secretNames(env).length > 0);
  const values = new Map<string, string>();
  if (wanted.length > 0) {
    const projects = [...new Set(wanted.map(([r]) => r.project_id))];
    const names = [...new Set(wanted.flatMap(([, env]) => secretNames(env)))];
    const secrets = await trx
      .selectFrom('secrets')
      .selectAll()
      .where('project_id', 'in', projects)
      .where('name', 'in', names)
      .execute();
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
