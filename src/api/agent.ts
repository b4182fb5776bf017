// /v1/agent: the protocol between the control plane and host agents.
// Registration trades a join token for a host credential; heartbeats keep the
// host ready; the assignment watch is a long-poll that returns the moment the
// host's assignments change; status reports move instances along their state machine.
import { ApiError, conflict } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { HostRow, HostTable } from '../store/schema.ts';
import type { Trx } from '../store/store.ts';
import { hashSecret, newSecret } from './auth.ts';
import { requireAgent } from './access.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import {
  AssignmentQuery,
  Assignments,
  Heartbeat,
  HeartbeatAck,
  ObservedReport,
  Register,
  Registered,
  StatusReportBody,
  type Fingerprint,
} from '../model/agent-protocol.ts';
import { resolveParent } from './hosts.ts';
import { resolveEnv } from '../services/secrets.ts';
import { findHost } from './lookup.ts';
import { replaceLabels } from '../store/labels.ts';
import { presentHost, presentInstance } from './present.ts';
import { IdParam, Instance } from '../model/schemas.ts';

const tags = ['agent'];

async function applyFingerprint(trx: Trx, f: Fingerprint, pool: string | null): Promise<Partial<HostTable>> {
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
    out.parent_instance_id = await resolveParent(trx, f.parent, pool);
    out.kind = 'virtual';
  }
  if (f.topology?.region !== undefined) out.region = f.topology.region;
  if (f.topology?.zone !== undefined) out.zone = f.topology.zone;
  if (f.topology?.rack !== undefined) out.rack = f.topology.rack;
  if (f.labels !== undefined) out.labels = JSON.stringify(f.labels);
  return out;
}

export function agentRoutes(app: App, { store, services, guard }: RouteDeps): void {
  app.post(
    '/agent/register',
    {
      config: { auth: false },
      schema: {
        tags,
        summary: "Register a host with a join token; answers the agent's credential",
        body: Register,
        response: { 201: Registered },
      },
    },
    async (req, reply) => {
      const b = req.body;
      guard.check(req.ip);
      const jt = await store.db
        .selectFrom('join_tokens')
        .selectAll()
        .where('hash', '=', hashSecret(b.joinToken))
        .executeTakeFirst();
      if (!jt || (jt.expires_at !== null && jt.expires_at <= now())) {
        guard.failed(req.ip);
        throw new ApiError('unauthenticated', 'invalid or expired join token');
      }
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
          await trx.deleteFrom('tokens').where('host_id', '=', existing.id).execute();
          const state = existing.state === 'draining' ? 'draining' : 'ready';
          row = { ...existing, ...fp, state, last_heartbeat_at: t, updated_at: t };
          await trx
            .updateTable('hosts')
            .set({ ...fp, state, last_heartbeat_at: t, updated_at: t })
            .where('id', '=', existing.id)
            .execute();
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
          await trx.insertInto('hosts').values(row).execute();
        }
        await replaceLabels(trx, 'host', row.id, JSON.parse(row.labels) as Record<string, string>);
        await trx
          .insertInto('tokens')
          .values({
            id: newId('tok'),
            name: `agent:${b.name}`,
            hash: hashSecret(secret),
            user_id: null,
            host_id: row.id,
            created_at: t,
            expires_at: null,
          })
          .execute();
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
      return reply
        .code(201)
        .send({ host: presentHost(host), token: secret, heartbeatSeconds: services.heartbeatSeconds });
    },
  );

  app.post(
    '/agent/heartbeat',
    {
      schema: {
        tags,
        summary: 'Heartbeat, optionally with a fresh fingerprint',
        body: Heartbeat,
        response: { 200: HeartbeatAck },
      },
    },
    async req => {
      const a = requireAgent(principalOf(req));
      const host = await store.write(async ({ trx, emit }) => {
        const h = await trx.selectFrom('hosts').selectAll().where('id', '=', a.hostId).executeTakeFirstOrThrow();
        const t = now();
        const fp = req.body.fingerprint ? await applyFingerprint(trx, req.body.fingerprint, h.pool) : {};
        const state = h.state === 'draining' ? 'draining' : 'ready';
        await trx
          .updateTable('hosts')
          .set({ ...fp, state, last_heartbeat_at: t, updated_at: t })
          .where('id', '=', h.id)
          .execute();
        if (fp.labels !== undefined)
          await replaceLabels(trx, 'host', h.id, JSON.parse(fp.labels) as Record<string, string>);
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
      return { host: presentHost(host), heartbeatSeconds: services.heartbeatSeconds };
    },
  );

  app.get(
    '/agent/assignments',
    {
      schema: {
        tags,
        summary: "The host's instances; waits until they change when given the last version",
        querystring: AssignmentQuery,
        response: { 200: Assignments },
      },
    },
    async req => {
      const a = requireAgent(principalOf(req));
      const abort = new AbortController();
      req.raw.once('close', () => abort.abort());
      await services.agents.wait(a.hostId, req.query.version, (req.query.waitSeconds ?? 30) * 1000, abort.signal);
      // Read the version before the rows: a change landing in between makes the
      // next call return at once instead of being missed.
      const version = services.agents.version(a.hostId);
      const rows = await store.db
        .selectFrom('instances')
        .selectAll()
        .where('host_id', '=', a.hostId)
        .orderBy('id')
        .execute();
      // The one place secrets' values leave the server: to the agent of the host that runs them.
      const envs = await resolveEnv(store.db, services.secrets, rows);
      return { version, instances: rows.map(r => ({ ...presentInstance(r), env: envs.get(r.id) ?? {} })) };
    },
  );

  app.post(
    '/agent/instances/:id/status',
    {
      schema: {
        tags,
        summary: 'Report what the agent observes of an instance',
        params: IdParam,
        body: StatusReportBody,
        response: { 200: Instance },
      },
    },
    async req => {
      const a = requireAgent(principalOf(req));
      const row = await services.instances.report(a.hostId, req.params.id, req.body, `agent:${a.name}`);
      return presentInstance(row);
    },
  );

  app.post(
    '/agent/instances/:id/observed',
    {
      schema: {
        tags,
        summary: "Report what the agent observes beyond the state: the instance's address, published ports, health",
        params: IdParam,
        body: ObservedReport,
        response: { 200: Instance },
      },
    },
    async req => {
      const a = requireAgent(principalOf(req));
      const row = await services.instances.observe(a.hostId, req.params.id, req.body, `agent:${a.name}`);
      return presentInstance(row);
    },
  );
}
