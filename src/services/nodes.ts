// Bare-metal nodes: enrollment, Ironic's provisioning state machine, and what
// a conductor is told and tells back. The rules:
// - A user action (manage, inspect, clean, provide) is legal only from the
//   states `transitions` lists; anything else is a 409 naming the state.
// - A step (verifying, inspecting, cleaning, deploying, undeploying) starts
//   with a deadline; the conductor reports its end for the step it saw (its
//   start time), so a late report of an older attempt changes nothing. A
//   failed or overdue step lands in its named error state with the reason.
// - The node's hosts row (same id) is what the scheduler sees: ready while
//   available (or holding its instance) and not in maintenance.
// - The BMC URL is sealed at rest; only the node's conductor reads it.
import { conflict, invalid, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import { bmcEndpoint, displayBmcUrl, parseBmcUrl } from '../model/bmc-url.ts';
import {
  type ConductedNode,
  failedState,
  isStep,
  type NodeEnroll,
  type NodeStep,
  type ProvisionAction,
  type ProvisionState,
  type StepReport,
} from '../model/nodes.ts';
import type { WriteContext } from '../store/store.ts';
import { deleteHost, findHost, hostName, insertHost, readyAgentHosts, updateHost } from '../store/hosts.ts';
import { findInstance, updateInstance } from '../store/instances.ts';
import { replaceLabels } from '../store/labels.ts';
import {
  conductors,
  deleteNode,
  findNode,
  insertNode,
  listNodes,
  nodeByEndpoint,
  nodesOfConductor,
  nodesOfGoneInstances,
  nodesPerConductor,
  overdueNodes,
  updateNode,
} from '../store/nodes.ts';
import type { HostRow, HostTable, NodeRow, NodeTable } from '../store/schema.ts';
import type { Store, Trx } from '../store/store.ts';
import { actorOf, requireClusterAdmin } from './access.ts';
import type { UserPrincipal } from './auth.ts';
import type { SecretBox } from './secret-box.ts';

/** Seconds each step may take before it fails as timed out. */
export type StepTimeouts = Record<NodeStep, number>;

export const defaultStepTimeouts: StepTimeouts = {
  verifying: 60,
  inspecting: 600,
  cleaning: 600,
  deploying: 1200,
  undeploying: 300,
};

/** Where each user action may start, and the step it starts (or the state it sets at once). */
const transitions: Record<
  ProvisionAction,
  { from: readonly ProvisionState[]; to: ProvisionState; target: ProvisionState | null }[]
> = {
  manage: [
    { from: ['enroll', 'verify failed'], to: 'verifying', target: 'manageable' },
    { from: ['inspect failed', 'clean failed', 'available'], to: 'manageable', target: null },
  ],
  inspect: [{ from: ['manageable', 'inspect failed'], to: 'inspecting', target: 'manageable' }],
  clean: [{ from: ['manageable'], to: 'cleaning', target: 'manageable' }],
  provide: [{ from: ['manageable', 'clean failed'], to: 'cleaning', target: 'available' }],
};

/** States a node may be deleted in: nothing of a tenant is on it and no step runs. */
const deletable: readonly string[] = [
  'enroll',
  'manageable',
  'available',
  'verify failed',
  'inspect failed',
  'clean failed',
];

/** The hosts row's state for a node: the scheduler takes it only while ready. */
function hostStateOf(n: Pick<NodeRow, 'provision_state' | 'maintenance'>): string {
  if (n.maintenance) return 'not-ready';
  return n.provision_state === 'available' || n.provision_state === 'deploying' || n.provision_state === 'active'
    ? 'ready'
    : 'not-ready';
}

const getHost = (db: Store['db'], id: string) => findHost(db, id);

const plus = (iso: string, seconds: number) => new Date(Date.parse(iso) + seconds * 1000).toISOString();

export class NodeService {
  private readonly store: Store;
  private readonly box: SecretBox;
  readonly timeouts: StepTimeouts;

  constructor(store: Store, box: SecretBox, timeouts: StepTimeouts = defaultStepTimeouts) {
    this.store = store;
    this.box = box;
    this.timeouts = timeouts;
  }

  async list(p: UserPrincipal, o: { limit: number; after: string | undefined }): Promise<NodeRow[]> {
    requireClusterAdmin(p);
    return listNodes(this.store.db, o);
  }

  async show(p: UserPrincipal, ref: string): Promise<NodeRow> {
    requireClusterAdmin(p);
    const n = await findNode(this.store.db, ref);
    if (!n) throw notFound('node', ref);
    return n;
  }

  /** What a node's presentation adds: its hosts row (topology, capacity) and its conductor's name. */
  async details(n: NodeRow): Promise<{ host: HostRow | undefined; conductor: string }> {
    const [host, conductor] = await Promise.all([
      getHost(this.store.db, n.id),
      hostName(this.store.db, n.conductor_host_id),
    ]);
    return { host, conductor: conductor ?? n.conductor_host_id };
  }

  async enroll(p: UserPrincipal, b: NodeEnroll): Promise<NodeRow> {
    requireClusterAdmin(p);
    let bmc: ReturnType<typeof parseBmcUrl>;
    try {
      bmc = parseBmcUrl(b.bmc);
    } catch (err) {
      throw invalid((err as Error).message, { field: 'body.bmc' });
    }
    return this.store.write(async ({ trx, emit }) => {
      if ((await findNode(trx, b.name)) || (await findHost(trx, b.name)))
        throw conflict(`a node or host named ${JSON.stringify(b.name)} already exists`);
      const endpoint = bmcEndpoint(bmc);
      const same = await nodeByEndpoint(trx, endpoint);
      if (same) throw conflict(`the BMC at ${endpoint} is already enrolled as node ${same.name}`);
      const conductor = await this.pickConductor(trx, b.conductor);
      const t = now();
      const id = newId('hst');
      const node: NodeTable = {
        id,
        name: b.name,
        bmc_protocol: bmc.protocol,
        bmc_address: displayBmcUrl(bmc),
        bmc_endpoint: endpoint,
        bmc_secret: this.box.seal(b.bmc, id),
        provision_state: 'enroll',
        target_state: null,
        last_error: '',
        maintenance: 0,
        maintenance_reason: '',
        conductor_host_id: conductor,
        hardware: null,
        macs: '[]',
        instance_id: null,
        step_started_at: null,
        step_deadline_at: null,
        created_at: t,
        updated_at: t,
      };
      const host: HostTable = {
        id,
        name: b.name,
        kind: 'metal',
        parent_instance_id: null,
        region: b.topology?.region ?? '',
        zone: b.topology?.zone ?? '',
        rack: b.topology?.rack ?? '',
        labels: JSON.stringify(b.labels ?? {}),
        capacity_vcpus: 0,
        capacity_memory_mib: 0,
        capacity_disk_gib: 0,
        allocatable_vcpus: 0,
        allocatable_memory_mib: 0,
        allocatable_disk_gib: 0,
        drivers: JSON.stringify(['metal']),
        state: 'not-ready',
        pool: null,
        info: '{}',
        last_heartbeat_at: null,
        created_at: t,
        updated_at: t,
      };
      await insertNode(trx, node);
      await insertHost(trx, host);
      await replaceLabels(trx, 'host', id, b.labels ?? {});
      emit({
        type: 'node.enrolled',
        projectId: null,
        resourceType: 'node',
        resourceId: id,
        actor: actorOf(p),
        host: conductor,
        data: { name: b.name, conductor },
      });
      return node;
    });
  }

  /** The named conductor, or the ready host with the metal driver that drives the fewest nodes. */
  private async pickConductor(trx: Trx, ref: string | undefined): Promise<string> {
    if (ref !== undefined) {
      const h = await findHost(trx, ref);
      if (!h || h.kind === 'metal') throw notFound('host', ref);
      if (!(JSON.parse(h.drivers) as string[]).includes('metal'))
        throw conflict(`host ${h.name} does not offer the metal driver: its agent cannot conduct nodes`);
      return h.id;
    }
    const load = await nodesPerConductor(trx);
    const able = (await readyAgentHosts(trx)).filter(h => (JSON.parse(h.drivers) as string[]).includes('metal'));
    if (able.length === 0)
      throw conflict(
        'no ready host offers the metal driver: start an agent with --metal-bridge on a host to conduct nodes',
      );
    able.sort((a, b) => (load.get(a.id) ?? 0) - (load.get(b.id) ?? 0) || a.id.localeCompare(b.id));
    return able[0]!.id;
  }

  async provision(p: UserPrincipal, ref: string, action: ProvisionAction): Promise<NodeRow> {
    requireClusterAdmin(p);
    return this.store.write(async ctx => {
      const n = await findNode(ctx.trx, ref);
      if (!n) throw notFound('node', ref);
      if (n.maintenance)
        throw conflict(`node ${n.name} is in maintenance: turn it off first (strata node maintenance off ${n.name})`);
      const rule = transitions[action].find(r => r.from.includes(n.provision_state as ProvisionState));
      if (!rule) {
        const from = transitions[action].flatMap(r => r.from).join(', ');
        throw conflict(`node ${n.name} is ${n.provision_state}: ${action} needs it ${from}`, {
          provisionState: n.provision_state,
        });
      }
      return this.move(ctx, n, rule.to, rule.target, `${action} by ${actorOf(p)}`);
    });
  }

  async maintenance(p: UserPrincipal, ref: string, on: boolean, reason = ''): Promise<NodeRow> {
    requireClusterAdmin(p);
    return this.store.write(async ({ trx, emit }) => {
      const n = await findNode(trx, ref);
      if (!n) throw notFound('node', ref);
      const update = { maintenance: on ? 1 : 0, maintenance_reason: on ? reason : '', updated_at: now() };
      await updateNode(trx, n.id, update);
      const next = { ...n, ...update };
      await updateHost(trx, n.id, { state: hostStateOf(next), updated_at: update.updated_at });
      emit({
        type: 'node.maintenance',
        projectId: null,
        resourceType: 'node',
        resourceId: n.id,
        actor: actorOf(p),
        host: n.conductor_host_id,
        data: { on, reason: update.maintenance_reason },
      });
      return next;
    });
  }

  async remove(p: UserPrincipal, ref: string): Promise<void> {
    requireClusterAdmin(p);
    await this.store.write(async ({ trx, emit }) => {
      const n = await findNode(trx, ref);
      if (!n) throw notFound('node', ref);
      if (!deletable.includes(n.provision_state) || n.instance_id)
        throw conflict(
          `node ${n.name} is ${n.provision_state}${n.instance_id ? ` and holds instance ${n.instance_id}` : ''}: delete it once it is ${deletable.join(', ')}`,
        );
      await deleteNode(trx, n.id);
      await deleteHost(trx, n.id);
      emit({
        type: 'node.deleted',
        projectId: null,
        resourceType: 'node',
        resourceId: n.id,
        actor: actorOf(p),
        host: n.conductor_host_id,
        data: { name: n.name },
      });
    });
  }

  /** Moves a node to `to`, starting its step's clock when `to` is a step; the hosts row follows. */
  async move(
    { trx, emit }: WriteContext,
    n: NodeRow,
    to: ProvisionState,
    target: ProvisionState | null,
    reason: string,
    extra: Partial<NodeTable> = {},
  ): Promise<NodeRow> {
    const t = now();
    const step = isStep(to);
    const update: Partial<NodeTable> = {
      provision_state: to,
      target_state: target,
      step_started_at: step ? t : null,
      step_deadline_at: step ? plus(t, this.timeouts[to]) : null,
      updated_at: t,
      ...extra,
    };
    if (step) update.last_error = '';
    await updateNode(trx, n.id, update);
    const next = { ...n, ...update } as NodeRow;
    await updateHost(trx, n.id, { state: hostStateOf(next), updated_at: t });
    emit({
      type: 'node.state',
      projectId: null,
      resourceType: 'node',
      resourceId: n.id,
      actor: reason.startsWith('conductor') ? `agent:${n.conductor_host_id}` : 'strata',
      host: n.conductor_host_id,
      data: { from: n.provision_state, to, reason },
    });
    return next;
  }

  /** The nodes a conductor drives, with their BMC URLs opened. */
  async conducted(hostId: string): Promise<ConductedNode[]> {
    const rows = await nodesOfConductor(this.store.db, hostId);
    return rows.map(n => ({
      id: n.id,
      name: n.name,
      bmcUrl: this.box.open(n.bmc_secret, n.id),
      provisionState: n.provision_state as ProvisionState,
      targetState: n.target_state as ProvisionState | null,
      maintenance: n.maintenance === 1,
      macs: JSON.parse(n.macs) as string[],
      instance: n.instance_id,
      stepStartedAt: n.step_started_at,
      stepDeadlineAt: n.step_deadline_at,
    }));
  }

  /** node id -> conductor host id, for waking conductors. */
  async conductorMap(): Promise<Map<string, string>> {
    return conductors(this.store.db);
  }

  /** A conductor's report of the end of a step; 409 when the node has moved on since. */
  async report(hostId: string, ref: string, r: StepReport): Promise<NodeRow> {
    return this.store.write(async ctx => {
      const n = await findNode(ctx.trx, ref);
      if (!n || n.conductor_host_id !== hostId) throw notFound('node', ref);
      if (n.provision_state !== r.step || n.step_started_at !== r.stepStartedAt)
        throw conflict(`node ${n.name} is no longer in that step (now ${n.provision_state})`, {
          provisionState: n.provision_state,
        });
      const extra: Partial<NodeTable> = {};
      if (r.hardware) {
        extra.hardware = JSON.stringify(r.hardware);
        extra.macs = JSON.stringify(r.hardware.nics.map(x => x.mac));
        const diskGib = Math.floor((r.hardware.disks[0]?.sizeBytes ?? 0) / 2 ** 30);
        const cap = { vcpus: r.hardware.cpus, memoryMib: r.hardware.memoryMib, diskGib };
        await updateHost(ctx.trx, n.id, {
          capacity_vcpus: cap.vcpus,
          capacity_memory_mib: cap.memoryMib,
          capacity_disk_gib: cap.diskGib,
          allocatable_vcpus: cap.vcpus,
          allocatable_memory_mib: cap.memoryMib,
          allocatable_disk_gib: cap.diskGib,
        });
      }
      const step = r.step;
      if (!r.ok) {
        const message = r.message || `${step} failed`;
        const failed = await this.move(ctx, n, failedState[step], null, `conductor: ${message}`, {
          ...extra,
          last_error: message,
        });
        if (step === 'deploying' && n.instance_id) await failInstance(ctx, n.instance_id, `deploy failed: ${message}`);
        return failed;
      }
      if (step === 'undeploying') return this.move(ctx, n, 'cleaning', 'available', 'conductor: undeployed', extra);
      const to: ProvisionState =
        step === 'deploying' ? 'active' : ((n.target_state as ProvisionState | null) ?? 'manageable');
      return this.move(ctx, n, to, null, `conductor: ${step} done${r.message ? `: ${r.message}` : ''}`, extra);
    });
  }

  /** An available node the placer may give a metal instance: its name, conductor and whole capacity. */
  async placeable(
    trx: Trx,
    nodeId: string,
  ): Promise<
    { name: string; conductor: string; capacity: { vcpus: number; memoryMib: number; diskGib: number } } | undefined
  > {
    const n = await findNode(trx, nodeId);
    const h = await findHost(trx, nodeId);
    if (!n || !h || n.provision_state !== 'available' || n.maintenance) return undefined;
    return {
      name: n.name,
      conductor: n.conductor_host_id,
      capacity: { vcpus: h.allocatable_vcpus, memoryMib: h.allocatable_memory_mib, diskGib: h.allocatable_disk_gib },
    };
  }

  /** The placer's side: the node takes the instance and its conductor starts deploying. */
  async startDeploy(ctx: WriteContext, nodeId: string, instanceId: string): Promise<void> {
    const n = await findNode(ctx.trx, nodeId);
    if (n?.provision_state !== 'available') throw new Error(`node ${nodeId} is not available`);
    await this.move(ctx, n, 'deploying', 'active', `deploying instance ${instanceId}`, { instance_id: instanceId });
  }

  /** Nodes whose instance is gone are undeployed: powered off, then cleaned before they are offered again. */
  async releaseGone(): Promise<number> {
    const gone = await nodesOfGoneInstances(this.store.db);
    for (const g of gone) {
      await this.store.write(async ctx => {
        const n = await findNode(ctx.trx, g.id);
        if (!n || n.instance_id !== g.instance_id) return;
        await this.move(ctx, n, 'undeploying', 'available', `instance ${g.instance_id} deleted`, { instance_id: null });
      });
    }
    return gone.length;
  }

  /** Steps past their deadline fail as timed out: a node that never calls back, or a conductor gone quiet. */
  async expireOverdue(graceSeconds: number): Promise<number> {
    const before = plus(now(), -graceSeconds);
    const overdue = await overdueNodes(this.store.db, Object.keys(this.timeouts), before);
    for (const o of overdue) {
      await this.store.write(async ctx => {
        const n = await findNode(ctx.trx, o.id);
        if (!n || !isStep(n.provision_state) || n.step_started_at !== o.step_started_at) return;
        const step = n.provision_state;
        const message = `${step} timed out after ${this.timeouts[step]} s`;
        await this.move(ctx, n, failedState[step], null, message, { last_error: message });
        if (step === 'deploying' && n.instance_id) await failInstance(ctx, n.instance_id, message);
      });
    }
    return overdue.length;
  }
}

/** A metal instance whose deploy failed fails with the node's reason. */
async function failInstance({ trx, emit }: WriteContext, id: string, message: string): Promise<void> {
  const row = await findInstance(trx, id);
  if (!row || row.state === 'failed') return;
  const t = now();
  await updateInstance(trx, id, { state: 'failed', message, finished_at: t, updated_at: t });
  emit({
    type: 'instance.state',
    projectId: row.project_id,
    resourceType: 'instance',
    resourceId: id,
    actor: 'strata',
    data: { from: row.state, to: 'failed', message, exitCode: null },
  });
}
