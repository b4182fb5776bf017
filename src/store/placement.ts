// What placement reads of the cluster, inside the committing transaction:
// hosts, what their instances use, where nested hosts run, where the members
// of every placement group are, and each project's strategy.
import { type Kysely, sql } from 'kysely';
import type { Database, HostRow, PlacementGroupRow } from './schema.ts';

/** Memory a host spends on an instance of a kind beyond what the instance asks for. */
export interface KindOverhead {
  kind: string;
  memoryMib: number;
}

/** Each instance's memory overhead on its host, by kind, as SQL. */
const overheadSql = (overheads: readonly KindOverhead[]) =>
  overheads.length === 0
    ? sql<number>`0`
    : sql<number>`case kind ${sql.join(
        overheads.map(o => sql`when ${o.kind} then ${o.memoryMib}`),
        sql` `,
      )} else 0 end`;

export interface ClusterRows {
  hosts: HostRow[];
  /** host id -> resources its instances take (memory with each kind's overhead) */
  usage: Map<string, { vcpus: number; mem: number; disk: number }>;
  /** parent instance id of a nested host -> the host that instance is on */
  parentHost: Map<string, string | null>;
  members: { group_id: string; host_id: string | null }[];
  groups: Map<string, PlacementGroupRow>;
  strategies: Map<string, 'binpack' | 'spread'>;
}

export async function readCluster(trx: Kysely<Database>, overheads: readonly KindOverhead[]): Promise<ClusterRows> {
  const hosts: HostRow[] = await trx.selectFrom('hosts').selectAll().execute();
  const used = await trx
    .selectFrom('instances')
    .select([
      // A metal instance takes its node, not its conductor.
      sql<string>`coalesce(node_id, host_id)`.as('host_id'),
      sql<number>`sum(vcpus)`.as('vcpus'),
      sql<number>`sum(memory_mib + ${overheadSql(overheads)})`.as('mem'),
      sql<number>`sum(disk_gib)`.as('disk'),
    ])
    .where('host_id', 'is not', null)
    .groupBy(sql`coalesce(node_id, host_id)`)
    .execute();
  const usage = new Map(used.map(u => [u.host_id!, u]));
  const parents = hosts.flatMap(h => (h.parent_instance_id ? [h.parent_instance_id] : []));
  const parentHost = new Map<string, string | null>();
  if (parents.length > 0) {
    for (const p of await trx.selectFrom('instances').select(['id', 'host_id']).where('id', 'in', parents).execute())
      parentHost.set(p.id, p.host_id);
  }
  const members = await trx
    .selectFrom('instance_groups')
    .innerJoin('instances', 'instances.id', 'instance_groups.instance_id')
    .select([
      'instance_groups.group_id as group_id',
      sql<string | null>`coalesce(instances.node_id, instances.host_id)`.as('host_id'),
    ])
    .where('instances.host_id', 'is not', null)
    .execute();
  const groups = new Map((await trx.selectFrom('placement_groups').selectAll().execute()).map(g => [g.id, g]));
  const strategies = new Map(
    (await trx.selectFrom('projects').select(['id', 'placement_strategy']).execute()).map(p => [
      p.id,
      p.placement_strategy as 'binpack' | 'spread',
    ]),
  );
  return { hosts, usage, parentHost, members, groups, strategies };
}
