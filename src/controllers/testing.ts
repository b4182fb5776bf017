// Stand-ins that make controllers testable in milliseconds: a clock moved by
// hand, an event source fed by hand, and a real store in a temporary directory
// with a runner on it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InstanceCreate } from '../kinds/schemas.ts';
import { newId } from '../lib/ids.ts';
import type { EventType } from '../model/events.ts';
import type { UserPrincipal } from '../services/auth.ts';
import { insertProject, newProjectRow } from '../store/projects.ts';
import type { HostTable, InstanceRow } from '../store/schema.ts';
import { openSqliteStore } from '../store/sqlite/store.ts';
import type { Store, StoredEvent } from '../store/store.ts';
import { type Clock, type Controller, Runner } from './runner.ts';

/** A cluster admin, for the services that ask who acts. */
export const clusterAdmin: UserPrincipal = {
  kind: 'user',
  userId: 'usr_test',
  name: 'admin',
  clusterAdmin: true,
  roles: new Map(),
  tokenId: 'tok_test',
  expiresAt: null,
};

interface Timer {
  ms: number;
  next: number;
  fn: () => void;
}

/** A clock that moves only when told; `advance` fires the timers that fall due, in order. */
export class ManualClock implements Clock {
  private t: number;
  private readonly timers = new Set<Timer>();

  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  every(ms: number, fn: () => void): () => void {
    const timer = { ms, next: this.t + ms, fn };
    this.timers.add(timer);
    return () => this.timers.delete(timer);
  }

  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.timers].filter(x => x.next <= end).sort((a, b) => a.next - b.next)[0];
      if (!due) break;
      this.t = due.next;
      due.next += due.ms;
      due.fn();
    }
    this.t = end;
  }
}

/** An event source for a runner without a store. */
export class ManualEvents {
  private readonly listeners = new Set<(e: StoredEvent) => void>();
  private seq = 0;

  subscribe = (listener: (e: StoredEvent) => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  publish(type: EventType, resourceId = `r${this.seq + 1}`, host: string | null = null): void {
    const e: StoredEvent = {
      seq: ++this.seq,
      at: new Date(0).toISOString(),
      project_id: null,
      type,
      resource_type: type.split('.')[0]!,
      resource_id: resourceId,
      actor: 'test',
      data: '{}',
      host,
    };
    for (const l of this.listeners) l(e);
  }
}

export interface Rig {
  store: Store;
  clock: ManualClock;
  runner: Runner;
  /** a project named default, without quotas */
  projectId: string;
  /** every event committed since the rig opened */
  events: StoredEvent[];
  close(): Promise<void>;
}

/** A store on SQLite in a temporary directory, with a project, and the controllers on a runner driven by a manual clock. */
export async function openRig(...controllers: ((store: Store) => Controller)[]): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-controllers-'));
  const store = await openSqliteStore({ file: join(dir, 'strata.db') });
  const projectId = newId('prj');
  const t = new Date().toISOString();
  await store.write(({ trx }) => insertProject(trx, newProjectRow(projectId, 'default', t)));
  const events: StoredEvent[] = [];
  store.onEvent(e => events.push(e));
  const clock = new ManualClock(Date.now());
  const errors: unknown[] = [];
  const runner = new Runner({
    subscribe: l => store.onEvent(l),
    clock,
    log: { error: obj => errors.push(obj) },
  });
  for (const c of controllers) runner.add(c(store));
  runner.start();
  await runner.idle();
  return {
    store,
    clock,
    runner,
    projectId,
    events,
    async close() {
      await runner.stop();
      await store.close();
      if (errors.length > 0) throw new Error(`a reconcile failed: ${JSON.stringify(errors)}`);
    },
  };
}

/** Registers a ready host as an agent would (it heartbeats now, by the rig's clock) unless told otherwise. */
export async function addHost(rig: Rig, name: string, o: Partial<HostTable> = {}): Promise<string> {
  const t = new Date(rig.clock.now()).toISOString();
  const id = newId('hst');
  await rig.store.write(async ({ trx, emit }) => {
    await trx
      .insertInto('hosts')
      .values({
        id,
        name,
        kind: 'physical',
        parent_instance_id: null,
        region: '',
        zone: '',
        rack: '',
        labels: '{}',
        capacity_vcpus: 4,
        capacity_memory_mib: 8192,
        capacity_disk_gib: 100,
        allocatable_vcpus: 4,
        allocatable_memory_mib: 8192,
        allocatable_disk_gib: 100,
        drivers: '["container","vm"]',
        info: '{}',
        state: 'ready',
        pool: null,
        last_heartbeat_at: t,
        created_at: t,
        updated_at: t,
        ...o,
      })
      .execute();
    emit({
      type: 'host.registered',
      projectId: null,
      resourceType: 'host',
      resourceId: id,
      actor: 'test',
      host: id,
      data: { name, drivers: ['container', 'vm'] },
    });
  });
  return id;
}

/** A container's spec in the rig's project: 1 vCPU, 256 MiB, unless `more` says otherwise. */
export const containerSpec = (name: string, more: Partial<InstanceCreate> = {}): InstanceCreate => ({
  project: 'default',
  name,
  kind: 'container',
  image: 'docker.io/library/alpine:3.20',
  resources: { vcpus: 1, memoryMib: 256 },
  ...more,
});

/** Every instance as stored, by name. */
export async function instancesByName(rig: Rig): Promise<Map<string, InstanceRow>> {
  const rows = await rig.store.db.selectFrom('instances').selectAll().orderBy('name').execute();
  return new Map(rows.map(r => [r.name, r]));
}
