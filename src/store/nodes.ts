// The nodes table: bare-metal servers and where each is in its provisioning.
import { hasPrefix } from '../lib/ids.ts';
import type { NodeRow, NodeTable } from './schema.ts';
import type { Db } from './store.ts';

/** A node by id or by name. */
export async function findNode(db: Db, ref: string): Promise<NodeRow | undefined> {
  const col = hasPrefix(ref, 'hst') ? 'id' : 'name';
  return db.selectFrom('nodes').selectAll().where(col, '=', ref).executeTakeFirst();
}

export async function nodeByEndpoint(db: Db, endpoint: string): Promise<NodeRow | undefined> {
  return db.selectFrom('nodes').selectAll().where('bmc_endpoint', '=', endpoint).executeTakeFirst();
}

/** Up to limit + 1 nodes in id order. */
export async function listNodes(db: Db, o: { limit: number; after: string | undefined }): Promise<NodeRow[]> {
  let q = db
    .selectFrom('nodes')
    .selectAll()
    .orderBy('id')
    .limit(o.limit + 1);
  if (o.after) q = q.where('id', '>', o.after);
  return q.execute();
}

export async function nodesOfConductor(db: Db, hostId: string): Promise<NodeRow[]> {
  return db.selectFrom('nodes').selectAll().where('conductor_host_id', '=', hostId).orderBy('id').execute();
}

/** Nodes in a step whose deadline has passed by `before`. */
export async function overdueNodes(db: Db, steps: readonly string[], before: string): Promise<NodeRow[]> {
  return db
    .selectFrom('nodes')
    .selectAll()
    .where('provision_state', 'in', steps)
    .where('step_deadline_at', '<', before)
    .execute();
}

/** node id -> its conductor, for every node. */
export async function conductors(db: Db): Promise<Map<string, string>> {
  const rows = await db.selectFrom('nodes').select(['id', 'conductor_host_id']).execute();
  return new Map(rows.map(r => [r.id, r.conductor_host_id]));
}

/** How many nodes each conductor drives. */
export async function nodesPerConductor(db: Db): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('nodes')
    .select(['conductor_host_id', db.fn.countAll<number>().as('n')])
    .groupBy('conductor_host_id')
    .execute();
  return new Map(rows.map(r => [r.conductor_host_id, Number(r.n)]));
}

export async function insertNode(db: Db, row: NodeTable): Promise<void> {
  await db.insertInto('nodes').values(row).execute();
}

export async function updateNode(db: Db, id: string, update: Partial<NodeTable>): Promise<void> {
  await db.updateTable('nodes').set(update).where('id', '=', id).execute();
}

export async function deleteNode(db: Db, id: string): Promise<void> {
  await db.deleteFrom('nodes').where('id', '=', id).execute();
}

/** Nodes that still name an instance that no longer exists (it was deleted). */
export async function nodesOfGoneInstances(db: Db): Promise<NodeRow[]> {
  return db
    .selectFrom('nodes')
    .selectAll()
    .where('instance_id', 'is not', null)
    .where(eb =>
      eb.not(eb.exists(eb.selectFrom('instances').select('id').whereRef('instances.id', '=', 'nodes.instance_id'))),
    )
    .execute();
}
