// Host agents: registration trades a join token for a host credential,
// heartbeats keep the host ready, and an agent reads its host's assignments.
import { conflict } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { Fingerprint } from '../model/agent-protocol.ts';
import { findHost, getHostById, insertHost, updateHost } from '../store/hosts.ts';
import { assignedTo } from '../store/instances.ts';
import { findJoinTokenByHash } from '../store/join-tokens.ts';
import { replaceLabels } from '../store/labels.ts';
import type { HostRow, HostTable, InstanceRow, JoinTokenRow } from '../store/schema.ts';
import type { Db, Store } from '../store/store.ts';
import { deleteHostTokens, insertToken } from '../store/tokens.ts';
import { hashSecret, newSecret } from './auth.ts';
import { resolveParent } from './hosts.ts';
import type { SecretBox } from './secret-box.ts';
import { resolveEnv } from './secrets.ts';

async function applyFingerprint(db: Db, f: Fingerprint, pool: string | null): Promise<Partial<HostTable>> {
  const alloc = f.allocatable ?? f.capacity;
  const out: Partial<HostTable> = {
    capacity_vcpus: f.capacity.vcpus,
    capacity_memory_mib: f.capacity.memoryMib,
    capacity_disk_gib: f.capacity.diskGib,
    // vCPUs may be overcommitted (the agent's --cpu-overcommit); memory and disk may not.
    allocatable_vcpus: alloc.vcpus,
    allocatable_memory_mib: Math.min(alloc.memoryMib, f.capacity.memoryMib),
    allocatable_disk_gib: Math.min(alloc.diskGib, f.capacity.diskGib),
    drivers: JSON.stringify(f.drivers),
    info: JSON.stringify(f.info ?? {}),
  };
  if (f.kind !== undefined) out.kind = f.kind;
  if (f.parent !== undefined) {
    out.parent_instance_id = await resolveParent(db, f.parent, pool);
    out.kind = 'virtual';
  }
  if (f.topology?.region !== undefined) out.region = f.topology.region;
  if (f.topology?.zone !== undefined) out.zone = f.topology.zone;
  if (f.topology?.rack !== undefined) out.rack = f.topology.rack;
  if (f.labels !== undefined) out.labels = JSON.stringify(f.labels);
  return out;
}

/** The join token `secret` stands for, unless it is unknown or expired. */
export async function validJoinToken(store: Store, secret: string): Promise<JoinTokenRow | undefined> {
  const jt = await findJoinTokenByHash(store.db, hashSecret(secret));
  if (!jt || (jt.expires_at !== null && jt.expires_at <= now())) return undefined;
  return jt;
}

/** Registers (or takes over, by name) a host for an agent; its credential is returned once. */
export async function register(
  store: Store,
  jt: JoinTokenRow,
  b: { name: string; fingerprint: Fingerprint },
): Promise<{ host: HostRow; secret: string }> {
  const secret = newSecret('stk');
  const host = await store.write(async ({ trx, emit }) => {
    const t = now();
    const existing = await findHost(trx, b.name);
    const fp = await applyFingerprint(trx, b.fingerprint, jt.pool);
    let row: HostRow;
    if (existing) {
      if (existing.pool !== jt.pool) throw conflict(`host ${b.name} exists in another pool`);
      // A join token is no key to a live host: only one whose agent is gone
      // (down) may be taken over by name, or one that never had an agent.
      if (existing.last_heartbeat_at !== null && existing.state !== 'down') {
        throw conflict(
          `host ${b.name} is registered and its agent is alive (state ${existing.state}); another agent may take its name only once it is down, or after a cluster admin removes it (strata host delete ${b.name})`,
        );
      }
      // Re-registration (a reinstalled agent): the old credential stops working.
      await deleteHostTokens(trx, existing.id);
      const state = existing.state === 'draining' ? 'draining' : 'ready';
      row = { ...existing, ...fp, state, last_heartbeat_at: t, updated_at: t };
      await updateHost(trx, existing.id, { ...fp, state, last_heartbeat_at: t, updated_at: t });
    } else {
      row = {
        id: newId('hst'),
        name: b.name,
        kind: 'physical',
        parent_instance_id: null,
        region: '',
        zone: '',
        rack: '',
        labels: '{}',
        capacity_vcpus: 0,
        capacity_memory_mib: 0,
        capacity_disk_gib: 0,
        allocatable_vcpus: 0,
        allocatable_memory_mib: 0,
        allocatable_disk_gib: 0,
        drivers: '[]',
        info: '{}',
        ...fp,
        state: 'ready',
        pool: jt.pool,
        last_heartbeat_at: t,
        created_at: t,
        updated_at: t,
      };
      await insertHost(trx, row);
    }
    await replaceLabels(trx, 'host', row.id, JSON.parse(row.labels) as Record<string, string>);
    await insertToken(trx, {
      id: newId('tok'),
      name: `agent:${b.name}`,
      hash: hashSecret(secret),
      user_id: null,
      host_id: row.id,
      created_at: t,
      expires_at: null,
    });
    emit({
      type: 'host.registered',
      projectId: row.pool,
      resourceType: 'host',
      resourceId: row.id,
      actor: `agent:${b.name}`,
      host: row.id,
      data: { name: b.name, drivers: b.fingerprint.drivers },
    });
    return row;
  });
  return { host, secret };
}

/** The host fields a fingerprint sets that placement depends on. */
const schedulingFields = {
  capacity_vcpus: 'capacity',
  capacity_memory_mib: 'capacity',
  capacity_disk_gib: 'capacity',
  allocatable_vcpus: 'allocatable',
  allocatable_memory_mib: 'allocatable',
  allocatable_disk_gib: 'allocatable',
  drivers: 'drivers',
  kind: 'kind',
  parent_instance_id: 'parent',
  region: 'topology',
  zone: 'topology',
  rack: 'topology',
  labels: 'labels',
} as const satisfies Partial<Record<keyof HostTable & keyof HostRow, string>>;

/** A heartbeat: the host is ready again (unless draining), with what its agent now reports. */
export async function heartbeat(store: Store, hostId: string, fingerprint: Fingerprint | undefined): Promise<HostRow> {
  return store.write(async ({ trx, emit }) => {
    const h = await getHostById(trx, hostId);
    const t = now();
    const fp = fingerprint ? await applyFingerprint(trx, fingerprint, h.pool) : {};
    const state = h.state === 'draining' ? 'draining' : 'ready';
    await updateHost(trx, h.id, { ...fp, state, last_heartbeat_at: t, updated_at: t });
    // Most heartbeats carry the labels already recorded: no need to delete and insert them again.
    if (fp.labels !== undefined && fp.labels !== h.labels)
      await replaceLabels(trx, 'host', h.id, JSON.parse(fp.labels) as Record<string, string>);
    // What the scheduler reads of a host changed (capacity freed, a driver that
    // now works, labels): said, so that instances waiting for capacity look again.
    const changed = [
      ...new Set(
        (Object.keys(schedulingFields) as (keyof typeof schedulingFields)[])
          .filter(k => fp[k] !== undefined && fp[k] !== h[k])
          .map(k => schedulingFields[k]),
      ),
    ];
    if (changed.length > 0)
      emit({
        type: 'host.updated',
        projectId: h.pool,
        resourceType: 'host',
        resourceId: h.id,
        actor: `agent:${h.name}`,
        host: h.id,
        data: { fields: changed, state },
      });
    if (state !== h.state) {
      emit({
        type: 'host.state',
        projectId: h.pool,
        resourceType: 'host',
        resourceId: h.id,
        actor: `agent:${h.name}`,
        host: h.id,
        data: { from: h.state, to: state, reason: 'heartbeat' },
      });
    }
    return { ...h, ...fp, state, last_heartbeat_at: t, updated_at: t };
  });
}

/** A host's instances, each with its environment resolved (the one place secrets' values leave the server). */
export async function assignments(
  store: Store,
  box: SecretBox,
  hostId: string,
): Promise<{ row: InstanceRow; env: Record<string, string> }[]> {
  const rows = await assignedTo(store.db, hostId);
  const envs = await resolveEnv(store.db, box, rows);
  return rows.map(row => ({ row, env: envs.get(row.id) ?? {} }));
}
