// The deployments table, their revisions, their replica slots' backoff, and
// the instances that are their replicas.
import { type LabelTerm, labelsMatch } from './labels.ts';
import type {
  DeploymentRevisionRow,
  DeploymentRow,
  DeploymentSlotRow,
  DeploymentTable,
  InstanceRow,
} from './schema.ts';
import type { Db } from './store.ts';

export async function findDeployment(db: Db, id: string): Promise<DeploymentRow | undefined> {
  return db.selectFrom('deployments').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function insertDeployment(db: Db, row: DeploymentRow): Promise<void> {
  await db.insertInto('deployments').values(row).execute();
}

export async function updateDeployment(db: Db, id: string, update: Partial<DeploymentTable>): Promise<void> {
  await db.updateTable('deployments').set(update).where('id', '=', id).execute();
}

/** Deletes a deployment with its revisions, slots and labels (its instances are the caller's). */
export async function deleteDeployment(db: Db, id: string): Promise<void> {
  await db.deleteFrom('deployment_slots').where('deployment_id', '=', id).execute();
  await db.deleteFrom('deployment_revisions').where('deployment_id', '=', id).execute();
  await db.deleteFrom('labels').where('resource_type', '=', 'deployment').where('resource_id', '=', id).execute();
  await db.deleteFrom('deployments').where('id', '=', id).execute();
}

export interface DeploymentFilter {
  limit: number;
  after: string | undefined;
  /** Project ids the list may show, or 'all'. */
  projects: string[] | 'all';
  name: string | undefined;
  labels: LabelTerm[];
}

/** Up to limit + 1 deployments in id order. */
export async function listDeployments(db: Db, o: DeploymentFilter): Promise<DeploymentRow[]> {
  let q = db
    .selectFrom('deployments')
    .selectAll()
    .orderBy('id')
    .limit(o.limit + 1);
  if (o.projects !== 'all') q = q.where('project_id', 'in', o.projects);
  if (o.after) q = q.where('id', '>', o.after);
  if (o.name !== undefined) q = q.where('name', '=', o.name);
  if (o.labels.length) q = q.where(eb => labelsMatch(eb, 'deployment', 'deployments.id', o.labels));
  return q.execute();
}

/** Every deployment's id, in id order. */
export async function deploymentIds(db: Db): Promise<string[]> {
  const rows = await db.selectFrom('deployments').select('id').orderBy('id').execute();
  return rows.map(r => r.id);
}

export async function hasDeployments(db: Db, projectId: string): Promise<boolean> {
  const row = await db
    .selectFrom('deployments')
    .select('id')
    .where('project_id', '=', projectId)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

export async function insertRevision(db: Db, row: DeploymentRevisionRow): Promise<void> {
  await db.insertInto('deployment_revisions').values(row).execute();
}

export async function updateRevision(
  db: Db,
  deploymentId: string,
  revision: number,
  update: Partial<DeploymentRevisionRow>,
): Promise<void> {
  await db
    .updateTable('deployment_revisions')
    .set(update)
    .where('deployment_id', '=', deploymentId)
    .where('revision', '=', revision)
    .execute();
}

export async function findRevision(
  db: Db,
  deploymentId: string,
  revision: number,
): Promise<DeploymentRevisionRow | undefined> {
  return db
    .selectFrom('deployment_revisions')
    .selectAll()
    .where('deployment_id', '=', deploymentId)
    .where('revision', '=', revision)
    .executeTakeFirst();
}

/** A deployment's revisions, newest first, up to limit + 1 below `before`. */
export async function listRevisions(
  db: Db,
  deploymentId: string,
  o: { limit: number; before: number | undefined },
): Promise<DeploymentRevisionRow[]> {
  let q = db
    .selectFrom('deployment_revisions')
    .selectAll()
    .where('deployment_id', '=', deploymentId)
    .orderBy('revision', 'desc')
    .limit(o.limit + 1);
  if (o.before !== undefined) q = q.where('revision', '<', o.before);
  return q.execute();
}

/** Every instance of a deployment, its replicas and those still going away, by slot. */
export async function replicasOf(db: Db, deploymentId: string): Promise<InstanceRow[]> {
  return db
    .selectFrom('instances')
    .selectAll()
    .where('deployment_id', '=', deploymentId)
    .orderBy('slot')
    .orderBy('id')
    .execute();
}

const IDS_PER_QUERY = 1000;

/** The deployments of the given instances that are replicas. */
export async function deploymentsOfInstances(db: Db, ids: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  // A pass over a large rollout names tens of thousands: SQLite takes at most 32,766 variables a statement.
  const unique = [...new Set(ids)];
  for (let i = 0; i < unique.length; i += IDS_PER_QUERY) {
    const rows = await db
      .selectFrom('instances')
      .select(['id', 'deployment_id'])
      .where('id', 'in', unique.slice(i, i + IDS_PER_QUERY))
      .where('deployment_id', 'is not', null)
      .execute();
    for (const r of rows) out.set(r.id, r.deployment_id!);
  }
  return out;
}

/** The deployments with replicas on the given hosts. */
export async function deploymentsOnHosts(db: Db, hostIds: readonly string[]): Promise<string[]> {
  if (hostIds.length === 0) return [];
  const rows = await db
    .selectFrom('instances')
    .select('deployment_id')
    .distinct()
    .where('host_id', 'in', [...hostIds])
    .where('deployment_id', 'is not', null)
    .execute();
  return rows.map(r => r.deployment_id!);
}

/** Which of `names` instances of the project already take. */
export async function takenNames(db: Db, projectId: string, names: readonly string[]): Promise<Set<string>> {
  if (names.length === 0) return new Set();
  const rows = await db
    .selectFrom('instances')
    .select('name')
    .where('project_id', '=', projectId)
    .where('name', 'in', [...names])
    .execute();
  return new Set(rows.map(r => r.name));
}

export async function slotsOf(db: Db, deploymentIds: readonly string[]): Promise<DeploymentSlotRow[]> {
  if (deploymentIds.length === 0) return [];
  return db
    .selectFrom('deployment_slots')
    .selectAll()
    .where('deployment_id', 'in', [...deploymentIds])
    .orderBy('deployment_id')
    .orderBy('slot')
    .execute();
}

export async function putSlot(db: Db, row: DeploymentSlotRow): Promise<void> {
  await db
    .insertInto('deployment_slots')
    .values(row)
    .onConflict(oc =>
      oc.columns(['deployment_id', 'slot']).doUpdateSet({
        failures: row.failures,
        revision: row.revision,
        retry_at: row.retry_at,
        reason: row.reason,
        failed_instance: row.failed_instance,
      }),
    )
    .execute();
}

export async function deleteSlot(db: Db, deploymentId: string, slot: number): Promise<void> {
  await db.deleteFrom('deployment_slots').where('deployment_id', '=', deploymentId).where('slot', '=', slot).execute();
}
