// The committer: turns pending instances into placements. One placement pass at
// a time; each commit re-reads host usage inside its transaction so capacity is
// never promised twice. The choice itself is made by the pure scheduler.
import type { FastifyBaseLogger } from 'fastify';
import { sql } from 'kysely';
import { now } from '../lib/time.ts';
import type { InstanceKind } from '../model/kinds.ts';
import { place, type ConstraintSpec, type HostView } from '../scheduler/place.ts';
import type { HostRow } from '../store/schema.ts';
import type { Store, Trx } from '../store/store.ts';

const wakeTypes = new Set(['instance.created', 'instance.rescheduled', 'instance.deleted', 'host.registered', 'host.updated', 'host.created', 'host.state']);

export class Placer {
  private running = false;
  private again = false;
  private readonly store: Store;
  private readonly log: FastifyBaseLogger;
  private idle: Promise<void> = Promise.resolve();

  constructor(store: Store, log: FastifyBaseLogger) {
    this.store = store;
    this.log = log;
    store.onEvent((e) => {
      if (wakeTypes.has(e.type)) this.kick();
    });
  }

  /** Ask for a placement pass soon; passes never overlap. */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.idle = new Promise((resolve) => {
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
      do {
        this.again = false;
        await this.pass();
      } while (this.again);
    } catch (err) {
      this.log.error({ err }, 'placement pass failed');
    } finally {
      this.running = false;
    }
  }

  private async pass(): Promise<void> {
    const pending = await this.store.db
      .selectFrom('instances')
      .select(['id'])
      .where('state', '=', 'pending')
      .where('desired_state', '!=', 'deleted')
      .orderBy('id')
      .limit(500)
      .execute();
    for (const { id } of pending) {
      await this.store.write(async ({ trx, emit }) => {
        const inst = await trx.selectFrom('instances').selectAll().where('id', '=', id).executeTakeFirst();
        if (!inst || inst.state !== 'pending' || inst.desired_state === 'deleted') return;
        const { hosts, dedicated } = await snapshot(trx);
        const result = place(
          hosts,
          {
            projectId: inst.project_id,
            kind: inst.kind as InstanceKind,
            vcpus: inst.vcpus,
            memoryMib: inst.memory_mib,
            diskGib: inst.disk_gib,
            constraints: JSON.parse(inst.constraints) as ConstraintSpec[],
          },
          dedicated,
        );
        if (!result.ok) {
          if (inst.message !== `unplaced: ${result.reason}`) {
            await trx.updateTable('instances').set({ message: `unplaced: ${result.reason}`, updated_at: now() }).where('id', '=', id).execute();
            emit({ type: 'instance.unplaced', projectId: inst.project_id, resourceType: 'instance', resourceId: id, actor: 'scheduler', data: { reason: result.reason } });
          }
          return;
        }
        await trx.updateTable('instances').set({ host_id: result.hostId, state: 'scheduled', message: '', updated_at: now() }).where('id', '=', id).execute();
        emit({ type: 'instance.scheduled', projectId: inst.project_id, resourceType: 'instance', resourceId: id, actor: 'scheduler', data: { hostId: result.hostId } });
      });
    }
  }
}

/** Hosts with what is free on them now, read inside the committing transaction. */
async function snapshot(trx: Trx): Promise<{ hosts: HostView[]; dedicated: Set<string> }> {
  const rows: HostRow[] = await trx.selectFrom('hosts').selectAll().execute();
  const used = await trx
    .selectFrom('instances')
    .select(['host_id', sql<number>`sum(vcpus)`.as('vcpus'), sql<number>`sum(memory_mib)`.as('mem'), sql<number>`sum(disk_gib)`.as('disk')])
    .where('host_id', 'is not', null)
    .groupBy('host_id')
    .execute();
  const usage = new Map(used.map((u) => [u.host_id!, u]));
  const dedicated = new Set<string>();
  const hosts = rows.map((h): HostView => {
    if (h.pool) dedicated.add(h.pool);
    const u = usage.get(h.id);
    return {
      id: h.id,
      state: h.state,
      drivers: JSON.parse(h.drivers) as string[],
      pool: h.pool,
      labels: JSON.parse(h.labels) as Record<string, string>,
      topology: { region: h.region, zone: h.zone, rack: h.rack },
      free: {
        vcpus: h.allocatable_vcpus - Number(u?.vcpus ?? 0),
        memoryMib: h.allocatable_memory_mib - Number(u?.mem ?? 0),
        diskGib: h.allocatable_disk_gib - Number(u?.disk ?? 0),
      },
    };
  });
  return { hosts, dedicated };
}
