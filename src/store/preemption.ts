// What preemption reads of the instances table: the instances that may be
// stopped to make room, and the preemptions still under way.
import type { InstanceRow } from './schema.ts';
import type { Db } from './store.ts';

/** An instance that holds capacity and may be preempted, with the groups it counts in. */
export type PreemptibleRow = Pick<
  InstanceRow,
  'id' | 'project_id' | 'name' | 'kind' | 'host_id' | 'priority' | 'vcpus' | 'memory_mib' | 'disk_gib' | 'created_at'
> & { groups: string[] };

/**
 * Instances of a priority below `below` that hold a host and are meant to
 * run there: started by their agent (starting, running, paused), not being
 * stopped, deleted or preempted already. One just placed is left alone until
 * its agent has taken it up: a stop reaches only a workload that exists. Bare-metal instances (on a node) and instances that are hosts
 * themselves (a VM other instances run in) are never preempted.
 */
export async function preemptible(db: Db, below: number): Promise<PreemptibleRow[]> {
  const rows = await db
    .selectFrom('instances')
    .select([
      'id',
      'project_id',
      'name',
      'kind',
      'host_id',
      'priority',
      'vcpus',
      'memory_mib',
      'disk_gib',
      'created_at',
    ])
    .where('priority', '<', below)
    .where('host_id', 'is not', null)
    .where('node_id', 'is', null)
    .where('state', 'in', ['starting', 'running', 'paused'])
    .where('desired_state', 'in', ['running', 'paused'])
    .where('preempted_by', 'is', null)
    .where(
      'id',
      'not in',
      db.selectFrom('hosts').select('parent_instance_id').where('parent_instance_id', 'is not', null),
    )
    .execute();
  const groups = new Map<string, string[]>();
  const ids = rows.map(r => r.id);
  for (let i = 0; i < ids.length; i += 500) {
    const part = await db
      .selectFrom('instance_groups')
      .select(['instance_id', 'group_id'])
      .where('instance_id', 'in', ids.slice(i, i + 500))
      .execute();
    for (const g of part) groups.set(g.instance_id, [...(groups.get(g.instance_id) ?? []), g.group_id]);
  }
  return rows.map(r => ({ ...r, groups: groups.get(r.id) ?? [] }));
}

/**
 * The victims of preemptions under way: preempted instances still on their
 * host, being stopped there. One lost with its host no longer counts: its
 * preemptor looks for room again.
 */
export async function preemptionsUnderWay(db: Db): Promise<Pick<InstanceRow, 'id' | 'host_id' | 'preempted_by'>[]> {
  return db
    .selectFrom('instances')
    .select(['id', 'host_id', 'preempted_by'])
    .where('preempted_by', 'is not', null)
    .where('host_id', 'is not', null)
    .where('desired_state', '=', 'stopped')
    .where('state', 'in', ['scheduled', 'starting', 'running', 'paused', 'stopping', 'stopped', 'failed'])
    .execute();
}
