// The secrets table: values sealed (services/secret-box.ts), never in clear.
import type { SecretRow } from './schema.ts';
import type { Db } from './store.ts';

/** Up to limit + 1 secrets of `projects` ('all': every project) in id order, by name when given. */
export async function listSecrets(
  db: Db,
  o: { limit: number; after: string | undefined; projects: string[] | 'all'; name: string | undefined },
): Promise<SecretRow[]> {
  let q = db
    .selectFrom('secrets')
    .selectAll()
    .orderBy('id')
    .limit(o.limit + 1);
  if (o.projects !== 'all') q = q.where('project_id', 'in', o.projects);
  if (o.name !== undefined) q = q.where('name', '=', o.name);
  if (o.after) q = q.where('id', '>', o.after);
  return q.execute();
}

export async function findSecret(db: Db, id: string): Promise<SecretRow | undefined> {
  return db.selectFrom('secrets').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function insertSecret(db: Db, row: SecretRow): Promise<void> {
  await db.insertInto('secrets').values(row).execute();
}

/** Replaces a secret's sealed value; false when it is gone. */
export async function updateSecretValue(db: Db, id: string, ciphertext: string, t: string): Promise<boolean> {
  const res = await db
    .updateTable('secrets')
    .set({ ciphertext, updated_at: t })
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

export async function deleteSecret(db: Db, id: string): Promise<void> {
  await db.deleteFrom('secrets').where('id', '=', id).execute();
}

/** Which of `names` are secrets of the project. */
export async function existingNames(db: Db, projectId: string, names: readonly string[]): Promise<Set<string>> {
  const rows = await db
    .selectFrom('secrets')
    .select('name')
    .where('project_id', '=', projectId)
    .where('name', 'in', [...names])
    .execute();
  return new Set(rows.map(r => r.name));
}

/** The secrets of `projects` named `names`. */
export async function secretsNamed(
  db: Db,
  projects: readonly string[],
  names: readonly string[],
): Promise<SecretRow[]> {
  return db
    .selectFrom('secrets')
    .selectAll()
    .where('project_id', 'in', [...projects])
    .where('name', 'in', [...names])
    .execute();
}

/** The SQL LIKE pattern of an environment that refers to secret `name` (a plain value's quotes are escaped in JSON, so it never matches). */
const refersTo = (name: string): string => `%${JSON.stringify({ secret: name })}%`;

/** Names of up to five instances of the project whose environment refers to secret `name`. */
export async function instancesUsing(db: Db, projectId: string, name: string): Promise<string[]> {
  const rows = await db
    .selectFrom('instances')
    .select('name')
    .where('project_id', '=', projectId)
    .where('env', 'like', refersTo(name))
    .limit(5)
    .execute();
  return rows.map(r => r.name);
}
