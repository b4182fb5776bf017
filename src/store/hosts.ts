// The hosts table.
import { hasPrefix } from '../lib/ids.ts';
import { type LabelTerm, labelsMatch } from './labels.ts';
import type { HostRow, HostTable } from './schema.ts';
import type { Db } from './store.ts';

/** A host by id or by name. */
export async function findHost(db: Db, ref: string): Promise<HostRow | undefined> {
  const col = hasPrefix(ref, 'hst') ? 'id' : 'name';
  return db.selectFrom('hosts').selectAll().where(col, '=', ref).executeTakeFirst();
}

export async function getHostById(db: Db, id: string): Promise<HostRow> {
  return db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

/** Up to limit + 1 hosts in id order: shared ones and those of `pools` ('all': every host). */
export async function listHosts(
  db: Db,
  o: { limit: number; after: string | undefined; pools: string[] | 'all'; labels: LabelTerm[] },
): Promise<HostRow[]> {
  let q = db
    .selectFrom('hosts')
    .selectAll()
    .orderBy('id')
    .limit(o.limit + 1);
  if (o.after) q = q.where('id', '>', o.after);
  const pools = o.pools;
  if (pools !== 'all') q = q.where(eb => eb.or([eb('pool', 'is', null), eb('pool', 'in', pools)]));
  if (o.labels.length) q = q.where(eb => labelsMatch(eb, 'host', 'hosts.id', o.labels));
  return q.execute();
}

export async function insertHost(db: Db, row: HostTable): Promise<void> {
  await db.insertInto('hosts').values(row).execute();
}

export async function updateHost(db: Db, id: string, update: Partial<HostTable>): Promise<void> {
  await db.updateTable('hosts').set(update).where('id', '=', id).execute();
}

/** Deletes a host and its labels. */
export async function deleteHost(db: Db, id: string): Promise<void> {
  await db.deleteFrom('labels').where('resource_type', '=', 'host').where('resource_id', '=', id).execute();
  await db.deleteFrom('hosts').where('id', '=', id).execute();
}

export async function hostName(db: Db, id: string): Promise<string | undefined> {
  return (await db.selectFrom('hosts').select(['name']).where('id', '=', id).executeTakeFirst())?.name;
}

/** Hosts whose agent has heartbeated and that liveness may still move on. */
export async function heartbeatingHosts(
  db: Db,
  states: readonly string[],
): Promise<{ id: string; state: string; last_heartbeat_at: string | null }[]> {
  return db
    .selectFrom('hosts')
    .select(['id', 'state', 'last_heartbeat_at'])
    .where('last_heartbeat_at', 'is not', null)
    .where('state', 'in', [...states])
    .execute();
}

/** The state and last heartbeat of the given hosts. */
export async function hostsLiveness(
  db: Db,
  ids: readonly string[],
): Promise<Map<string, { state: string; lastHeartbeatAt: string | null }>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .selectFrom('hosts')
    .select(['id', 'state', 'last_heartbeat_at'])
    .where('id', 'in', [...new Set(ids)])
    .execute();
  return new Map(rows.map(r => [r.id, { state: r.state, lastHeartbeatAt: r.last_heartbeat_at }]));
}

/**
 * Moves a host from state `from` to `to` unless it changed since it was seen
 * (another state, or a heartbeat after `at`); its pool when it moved.
 */
export async function moveHost(
  db: Db,
  id: string,
  from: string,
  at: string,
  to: string,
  t: string,
): Promise<{ pool: string | null } | undefined> {
  return db
    .updateTable('hosts')
    .set({ state: to, updated_at: t })
    .where('id', '=', id)
    .where('state', '=', from)
    .where('last_heartbeat_at', '=', at)
    .returning(['pool'])
    .executeTakeFirst();
}

export async function hostNameAndState(db: Db, id: string): Promise<{ name: string; state: string } | undefined> {
  return db.selectFrom('hosts').select(['name', 'state']).where('id', '=', id).executeTakeFirst();
}

/** Ready hosts that run an agent (not bare-metal nodes), with their drivers. */
export async function readyAgentHosts(db: Db): Promise<{ id: string; drivers: string }[]> {
  return db
    .selectFrom('hosts')
    .select(['id', 'drivers'])
    .where('state', '=', 'ready')
    .where('kind', '!=', 'metal')
    .execute();
}
