// The committer: turns pending instances into placements. One placement pass at
// a time; each commit re-reads host usage inside its transaction so capacity is
// never promised twice. The choice itself is made by the pure scheduler.
import type { FastifyBaseLogger } from 'fastify';
import { sql } from 'kysely';
import { now } from '../lib/time.ts';
import { hostMemoryOverheadMib, type InstanceKind } from '../model/kinds.ts';
import type { ConstraintSpec } from '../scheduler/constraints.ts';
import { Scheduler, type GroupRule, type Request, type SchedHost, type SpreadRule } from '../scheduler/scheduler.ts';
import type { Level } from '../scheduler/topology.ts';
import type { HostRow, InstanceRow, PlacementGroupRow } from '../store/schema.ts';
import type { Store, Trx } from '../store/store.ts';

// Events that may let a waiting instance fit somewhere: every pending instance is retried.
const hostTypes = new Set([
  'host.registered',
  'host.updated',
  'host.created',
  'host.state',
  'host.deleted',
  'instance.deleted',
]);
// Events that bring one instance to placement.
const instanceTypes = new Set(['instance.created', 'instance.rescheduled']);

export class Placer {
  private running = false;
  private readonly queue = new Set<string>();
  private retryAll = true;
  private readonly store: Store;
  private readonly log: FastifyBaseLogger;
  private idle: Promise<void> = Promise.resolve();

  constructor(store: Store, log: FastifyBaseLogger) {
    this.store = store;
    this.log = log;
    store.onEvent(e => {
      if (instanceTypes.has(e.type)) {
        this.queue.add(e.resource_id);
        this.kick();
      } else if (hostTypes.has(e.type)) {
        this.retryAll = true;
        this.kick();
      }
    });
  }

  /** Ask for a placement pass soon; passes never overlap. */
  kick(): void {
    if (this.running) return;
    this.running = true;
    this.idle = new Promise(resolve => {
      setImmediate(() => {
        void this.loop().finally(resolve);
      });
    });
  }

  /** Resolves when no pass is running (tests and shutdown). */
  async settled(): Promise<void> {
    while (this.running) await this.idle;
  }

  private async loop(): Promise<void> {
    try {
      while (this.retryAll || this.queue.size > 0) {
        let ids: string[] | 'all';
        if (this.retryAll) {
          this.retryAll = false;
          this.queue.clear();
          ids = 'all';
        } else {
          ids = [...this.queue].slice(0, 500);
          for (const id of ids) this.queue.delete(id);
        }
        await this.pass(ids);
      }
    } catch (err) {
      this.log.error({ err }, 'placement pass failed');
    } finally {
      this.running = false;
    }
  }

  /**
   * Places a batch in one transaction: the snapshot is read inside it and
   * updated after each placement, so the batch never promises capacity twice.
   */
  private async pass(ids: string[] | 'all'): Promise<void> {
    await this.store.write(async ({ trx, emit }) => {
      // By id the primary key answers; the state filter is applied here so the
      // planner is never tempted by the (large) set of pending rows.
      const rows =
        ids === 'all'
          ? await trx.selectFrom('instances').selectAll().where('state', '=', 'pending').orderBy('id').execute()
          : await trx.selectFrom('instances').selectAll().where('id', 'in', ids).orderBy('id').execute();
      const pending = rows.filter(r => r.state === 'pending' && r.desired_state !== 'deleted');
      if (pending.length === 0) return;
      const snap = await snapshot(trx);
      const sched = snap.scheduler;
      const anyReady = snap.anyReady;
      for (const inst of pending) {
        const request = requestOf(inst, snap);
        const result = sched.place(request);
        if (!result.ok) {
          const message = `unplaced: ${result.reason}`;
          // With ready hosts that cannot take it the instance fails at once,
          // saying why; with none ready at all (a cluster starting up) it waits.
          if (anyReady) {
            const t = now();
            await trx
              .updateTable('instances')
              .set({ state: 'failed', message, finished_at: t, updated_at: t })
              .where('id', '=', inst.id)
              .execute();
            emit({
              type: 'instance.unplaced',
              projectId: inst.project_id,
              resourceType: 'instance',
              resourceId: inst.id,
              actor: 'scheduler',
              data: { reason: result.reason },
            });
            emit({
              type: 'instance.state',
              projectId: inst.project_id,
              resourceType: 'instance',
              resourceId: inst.id,
              actor: 'scheduler',
              data: { from: 'pending', to: 'failed', message, exitCode: null },
            });
          } else if (inst.message !== message) {
            await trx.updateTable('instances').set({ message, updated_at: now() }).where('id', '=', inst.id).execute();
            emit({
              type: 'instance.unplaced',
              projectId: inst.project_id,
              resourceType: 'instance',
              resourceId: inst.id,
              actor: 'scheduler',
              data: { reason: result.reason },
            });
          }
          continue;
        }
        sched.commit(result.hostId, request);
        await trx
          .updateTable('instances')
          .set({ host_id: result.hostId, state: 'scheduled', message: '', updated_at: now() })
          .where('id', '=', inst.id)
          .execute();
        emit({
          type: 'instance.scheduled',
          projectId: inst.project_id,
          resourceType: 'instance',
          resourceId: inst.id,
          actor: 'scheduler',
          data: { hostId: result.hostId },
        });
      }
    });
  }
}

interface Snapshot {
  scheduler: Scheduler;
  anyReady: boolean;
  groups: Map<string, PlacementGroupRow>;
  strategies: Map<string, 'binpack' | 'spread'>;
}

/** Each instance's memory overhead on its host, by kind, as SQL. */
const overheadSql = sql.raw(
  `case kind ${Object.entries(hostMemoryOverheadMib)
    .map(([k, mib]) => `when '${k}' then ${mib}`)
    .join(' ')} else 0 end`,
);

/**
 * The cluster as it is now, read inside the committing transaction: hosts
 * with what is free on them and the host each nested host runs on, and where
 * the members of every placement group already are.
 */
export async function snapshot(trx: Trx): Promise<Snapshot> {
  const rows: HostRow[] = await trx.selectFrom('hosts').selectAll().execute();
  const used = await trx
    .selectFrom('instances')
    .select([
      'host_id',
      sql<number>`sum(vcpus)`.as('vcpus'),
      sql<number>`sum(memory_mib + ${overheadSql})`.as('mem'),
      sql<number>`sum(disk_gib)`.as('disk'),
    ])
    .where('host_id', 'is not', null)
    .groupBy('host_id')
    .execute();
  const usage = new Map(used.map(u => [u.host_id!, u]));
  const parents = rows.flatMap(h => (h.parent_instance_id ? [h.parent_instance_id] : []));
  const parentHost = new Map<string, string | null>();
  if (parents.length > 0) {
    for (const p of await trx.selectFrom('instances').select(['id', 'host_id']).where('id', 'in', parents).execute())
      parentHost.set(p.id, p.host_id);
  }
  const dedicated = new Set<string>();
  const hosts = rows.map((h): SchedHost => {
    if (h.pool) dedicated.add(h.pool);
    const u = usage.get(h.id);
    return {
      id: h.id,
      state: h.state,
      drivers: JSON.parse(h.drivers) as string[],
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
  const members = await trx
    .selectFrom('instance_groups')
    .innerJoin('instances', 'instances.id', 'instance_groups.instance_id')
    .select(['instance_groups.group_id as group_id', 'instances.host_id as host_id'])
    .where('instances.host_id', 'is not', null)
    .execute();
  for (const m of members) scheduler.addMember(m.group_id, m.host_id!);
  const groups = new Map((await trx.selectFrom('placement_groups').selectAll().execute()).map(g => [g.id, g]));
  const strategies = new Map(
    (await trx.selectFrom('projects').select(['id', 'placement_strategy']).execute()).map(p => [
      p.id,
      p.placement_strategy as 'binpack' | 'spread',
    ]),
  );
  return { scheduler, anyReady: hosts.some(h => h.state === 'ready'), groups, strategies };
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
    memoryMib: inst.memory_mib + (hostMemoryOverheadMib[inst.kind as InstanceKind] ?? 0),
    diskGib: inst.disk_gib,
    constraints: JSON.parse(inst.constraints) as ConstraintSpec[],
    groups: rules,
    spread,
    strategy: snap.strategies.get(inst.project_id) ?? 'binpack',
  };
}
