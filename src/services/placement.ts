// How placement sees the cluster and an instance: the snapshot the scheduler
// decides on, the request an instance makes of it, and the explanation a user
// can ask for. The placer (the committer) and the API share these.
import { findKind, kinds } from '../kinds/index.ts';
import type { Level } from '../model/topology.ts';
import type { ConstraintSpec } from '../scheduler/constraints.ts';
import { type GroupRule, type Request, type SchedHost, Scheduler, type SpreadRule } from '../scheduler/scheduler.ts';
import { type ClusterRows, readCluster } from '../store/placement.ts';
import type { InstanceRow, PlacementGroupRow } from '../store/schema.ts';
import type { Store, Trx } from '../store/store.ts';

export interface Snapshot {
  scheduler: Scheduler;
  anyReady: boolean;
  groups: Map<string, PlacementGroupRow>;
  strategies: Map<string, 'binpack' | 'spread'>;
  /** host id -> name */
  names: Map<string, string>;
}

/**
 * The cluster as it is now, read inside the committing transaction: hosts
 * with what is free on them and the host each nested host runs on, and where
 * the members of every placement group already are.
 */
const overheads = kinds.map(k => ({ kind: k.name, memoryMib: k.hostMemoryOverheadMib }));

export async function snapshot(trx: Trx): Promise<Snapshot> {
  return snapshotOf(await readCluster(trx, overheads));
}

/** The snapshot of what was read: the CPU a pass spends on it beyond SQL (bench/scheduler.ts measures this). */
export function snapshotOf({ hosts: rows, usage, parentHost, members, groups, strategies }: ClusterRows): Snapshot {
  const dedicated = new Set<string>();
  const hosts = rows.map((h): SchedHost => {
    if (h.pool) dedicated.add(h.pool);
    const u = usage.get(h.id);
    return {
      id: h.id,
      state: h.state,
      // A host's metal driver conducts nodes; metal instances run on the nodes themselves.
      drivers: (JSON.parse(h.drivers) as string[]).filter(d => d !== 'metal' || h.kind === 'metal'),
      pool: h.pool,
      labels: JSON.parse(h.labels) as Record<string, string>,
      topology: { region: h.region, zone: h.zone, rack: h.rack },
      parentHostId: h.parent_instance_id ? (parentHost.get(h.parent_instance_id) ?? null) : null,
      allocatable: { vcpus: h.allocatable_vcpus, memoryMib: h.allocatable_memory_mib, diskGib: h.allocatable_disk_gib },
      free: {
        vcpus: h.allocatable_vcpus - Number(u?.vcpus ?? 0),
        memoryMib: h.allocatable_memory_mib - Number(u?.mem ?? 0),
        diskGib: h.allocatable_disk_gib - Number(u?.disk ?? 0),
      },
    };
  });
  const scheduler = new Scheduler(hosts, dedicated);
  for (const m of members) scheduler.addMember(m.group_id, m.host_id!);
  const names = new Map(rows.map(h => [h.id, h.name]));
  return { scheduler, anyReady: hosts.some(h => h.state === 'ready'), groups, strategies, names };
}

/** What the scheduler needs of an instance: its resources, constraints, groups and its project's strategy. */
export function requestOf(inst: InstanceRow, snap: Pick<Snapshot, 'groups' | 'strategies'>): Request {
  const options = JSON.parse(inst.options) as { groups?: string[] };
  const rules: GroupRule[] = [];
  let spread: SpreadRule | undefined;
  for (const id of options.groups ?? []) {
    const g = snap.groups.get(id);
    if (!g) continue;
    if (g.policy === 'spread') spread ??= { groupId: g.id, level: g.level as Level, maxSkew: g.max_skew };
    else
      rules.push({
        id: g.id,
        policy: g.policy as GroupRule['policy'],
        strength: g.strength as GroupRule['strength'],
        level: g.level as Level,
      });
  }
  return {
    projectId: inst.project_id,
    kind: inst.kind,
    vcpus: inst.vcpus,
    memoryMib: inst.memory_mib + (findKind(inst.kind)?.hostMemoryOverheadMib ?? 0),
    diskGib: inst.disk_gib,
    constraints: JSON.parse(inst.constraints) as ConstraintSpec[],
    groups: rules,
    spread,
    strategy: snap.strategies.get(inst.project_id) ?? 'binpack',
    whole: findKind(inst.kind)?.wholeHost === true,
  };
}

/** How a waiting instance's message starts (the placer writes it); the scheduler's counted reasons follow. */
export const WAITING = 'waiting for capacity: ';

export interface Explanation {
  instance: string;
  host: string | null;
  state: string;
  priority: number;
  /** A pending instance's reasons as the placer last recorded them, while it waits for capacity. */
  waiting: string | null;
  candidates: { host: string; hostName: string; score: number }[];
  refusals: string;
}

/** How the scheduler sees an instance now: the best hosts' scores and why the others cannot take it. */
export async function explain(store: Store, row: InstanceRow): Promise<Explanation> {
  return store.read(async trx => {
    const snap = await snapshot(trx);
    const ranked = snap.scheduler.rank(requestOf(row, snap));
    return {
      instance: row.id,
      host: row.host_id,
      state: row.state,
      priority: row.priority,
      waiting: row.state === 'pending' && row.message.startsWith(WAITING) ? row.message.slice(WAITING.length) : null,
      candidates: ranked.candidates.map(c => ({
        host: c.hostId,
        hostName: snap.names.get(c.hostId) ?? c.hostId,
        score: Math.round(c.score * 1000) / 1000,
      })),
      refusals: ranked.refusals,
    };
  });
}
