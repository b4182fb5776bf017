// Instance lifecycle on the control plane: admission (quota, atomically),
// desired-state changes, agent reports through the state machine, and release.
import { ApiError, conflict, notFound } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import { canTransition, isInstanceState, type InstanceState } from '../model/instance-state.ts';
import {
  findKind,
  foreignFields,
  healthCheckProblem,
  kindNames,
  kindOf,
  type Problem,
  requireCapability,
} from '../kinds/index.ts';
import type { InstanceRow, InstanceTable, ProjectRow } from '../store/schema.ts';
import type { Store, Trx, WriteContext } from '../store/store.ts';
import { findHost, hostName } from '../store/hosts.ts';
import { addToGroups, groupsByRef } from '../store/groups.ts';
import {
  deleteInstance,
  findInstance,
  type InstanceFilter,
  insertInstance,
  listInstances,
  updateInstance,
} from '../store/instances.ts';
import { getProject, getProjectById, giveQuota, type Resources, takeQuota } from '../store/projects.ts';
import { canSee, requireRole } from './access.ts';
import type { UserPrincipal } from './auth.ts';
import { insertLabels } from '../store/labels.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { writeOrRehearse } from './dry-run.ts';
import { checkSecretRefs } from './secrets.ts';
import { type InstanceCreate, kindFields } from '../kinds/schemas.ts';
import type { HealthCheck, ObservedOut } from '../model/schemas.ts';
import { isDiskImageUrl } from '../model/disk-url.ts';
import { IMAGE_REF_MAX_LENGTH, isImageRef } from '../model/image-ref.ts';
import { PRIORITY_DEFAULT } from '../model/priority.ts';
import { releaseOf } from './preemption.ts';

/** An instance's options document: the shared options, and its kind's (src/kinds/). */
export interface InstanceOptions {
  /** placement group ids */
  groups: string[];
  stopGraceSeconds: number;
  workingDir: string;
  healthCheck: HealthCheck | null;
  [kindOption: string]: unknown;
}

export interface StatusReport {
  state: InstanceState;
  message?: string | undefined;
  exitCode?: number | null | undefined;
  /** The agent restarts the instance by its restart policy. */
  restart?: boolean | undefined;
  /** What the agent saw as the instance started: stored with the state, so a reader never sees one without the other. */
  observed?: Omit<ObservedPatch, 'health'> | undefined;
}

export class InstanceService {
  private readonly store: Store;

  constructor(store: Store) {
    this.store = store;
  }

  /** Creates an instance; `dryRun` answers what would be created and keeps nothing. */
  async create(projectId: string, b: InstanceCreate, actor: string, dryRun = false): Promise<InstanceRow> {
    checkInstanceSpec(b);
    return writeOrRehearse(this.store, dryRun, ctx => insertNewInstance(ctx, projectId, b, actor));
  }

  /** Sets the desired state; the agent holding the instance acts on it. */
  /** `graceSeconds` (stop only) overrides the instance's stop grace period for this stop; 0 kills at once. */
  async setDesired(
    id: string,
    desired: 'running' | 'stopped',
    actor: string,
    check: (row: InstanceRow) => void,
    graceSeconds?: number,
  ): Promise<InstanceRow> {
    return this.changeDesired(id, desired, actor, check, desired === 'running' ? 'start' : 'stop', graceSeconds);
  }

  /** Pause freezes a running instance in place (its processes, or its whole VM); resume thaws it. */
  async pause(id: string, paused: boolean, actor: string, check: (row: InstanceRow) => void): Promise<InstanceRow> {
    return this.changeDesired(
      id,
      paused ? 'paused' : 'running',
      actor,
      row => {
        check(row);
        requireCapability(kindOf(row.kind), 'pause', row.name);
        if (paused && (row.state !== 'running' || row.desired_state !== 'running'))
          throw conflict(`instance ${row.name} is not running (state ${row.state})`);
        if (!paused && row.desired_state !== 'paused' && row.state !== 'paused')
          throw conflict(`instance ${row.name} is not paused (state ${row.state})`);
      },
      paused ? 'pause' : 'resume',
    );
  }

  private async changeDesired(
    id: string,
    desired: 'running' | 'paused' | 'stopped',
    actor: string,
    check: (row: InstanceRow) => void,
    verb: 'start' | 'stop' | 'pause' | 'resume',
    graceSeconds?: number,
  ): Promise<InstanceRow> {
    return this.store.write(async ({ trx, emit }) => {
      const row = await findInstance(trx, id);
      if (!row) throw notFound('instance', id);
      check(row);
      if (row.desired_state === 'deleted') throw conflict(`instance ${row.name} is being deleted`);
      const update: Partial<InstanceTable> = { desired_state: desired, updated_at: now() };
      if (desired === 'stopped' && graceSeconds !== undefined) update.stop_grace_override = graceSeconds;
      if (desired === 'running' && row.stop_grace_override !== null) update.stop_grace_override = null;
      // The user's word replaces what a preemption asked of the instance.
      if (row.preempted_by !== null) Object.assign(update, { preempted_by: null, preemption: '' });
      // A failed instance that is started again goes back through the scheduler
      // when it holds no host.
      if (desired === 'running' && row.host_id === null && row.state === 'failed') update.state = 'pending';
      // On its host, an ended instance asked to start again goes back to
      // `scheduled`, which is the agent's cue to start it.
      if (desired === 'running' && row.host_id !== null && (row.state === 'stopped' || row.state === 'failed'))
        update.state = 'scheduled';
      await updateInstance(trx, id, update);
      emit({
        type: `instance.${verb}-requested`,
        projectId: row.project_id,
        resourceType: 'instance',
        resourceId: id,
        actor,
        host: row.host_id,
        data: { hostId: row.host_id },
      });
      if (update.state === 'pending')
        emit({
          type: 'instance.rescheduled',
          projectId: row.project_id,
          resourceType: 'instance',
          resourceId: id,
          actor,
          data: {},
        });
      return { ...row, ...update } as InstanceRow;
    });
  }

  /**
   * Restarts an instance: a running one is stopped (signal, grace, kill) and
   * started again by its agent; one that is not running is simply started.
   */
  async restart(id: string, actor: string, check: (row: InstanceRow) => void): Promise<InstanceRow> {
    const running = await this.store.write(async ({ trx, emit }) => {
      const row = await findInstance(trx, id);
      if (!row) throw notFound('instance', id);
      check(row);
      if (row.desired_state === 'deleted') throw conflict(`instance ${row.name} is being deleted`);
      if (row.state !== 'running' || row.desired_state !== 'running') return undefined;
      const t = now();
      await updateInstance(trx, id, { restart_requested_at: t, updated_at: t });
      emit({
        type: 'instance.restart-requested',
        projectId: row.project_id,
        resourceType: 'instance',
        resourceId: id,
        actor,
        host: row.host_id,
        data: { hostId: row.host_id },
      });
      return { ...row, restart_requested_at: t, updated_at: t };
    });
    return running ?? this.setDesired(id, 'running', actor, check);
  }

  /**
   * Deletes an instance. One that no agent holds is gone at once; one on a host
   * goes to `deleting` until its agent reports it destroyed. `force` forgets it
   * at once, for a host that cannot answer (down, or gone): should that host
   * come back, its agent removes the workload it no longer finds assigned.
   */
  async delete(id: string, actor: string, check: (row: InstanceRow) => void, force = false): Promise<InstanceRow> {
    return this.store.write(async ctx => {
      const row = await findInstance(ctx.trx, id);
      if (!row) throw notFound('instance', id);
      check(row);
      return deleteInstanceIn(ctx, row, actor, force);
    });
  }

  /** An agent's report of what it observes. Illegal transitions are refused. */
  async report(hostId: string, id: string, r: StatusReport, actor: string): Promise<InstanceRow> {
    return this.store.write(async ctx => {
      const row = await findInstance(ctx.trx, id);
      if (!row || row.host_id !== hostId)
        throw new ApiError('not_found', `instance ${JSON.stringify(id)} is not assigned to this host`);
      const from = row.state;
      if (!isInstanceState(from) || !canTransition(from, r.state)) {
        throw conflict(`illegal transition ${from} -> ${r.state}`, { from, to: r.state });
      }
      if (r.state === 'deleted') return finalizeDelete(ctx, row, actor);
      if (from === 'deleting' && row.desired_state === 'deleted') {
        // A report that crossed the delete (a start that failed meanwhile, a
        // destroy that failed) leaves it deleting, its message kept: the agent
        // destroys it again on its next look, and nothing is left stuck.
        if (r.message === undefined || r.message === row.message) return row;
        const kept = { message: r.message, updated_at: now() };
        await updateInstance(ctx.trx, id, kept);
        return { ...row, ...kept };
      }
      const t = now();
      const update: Partial<InstanceTable> = { state: r.state, updated_at: t };
      if (r.restart) update.restarts = row.restarts + 1;
      // The agent acting on a user's restart request starts the instance again.
      if (r.state === 'starting' && row.restart_requested_at !== null) update.restart_requested_at = null;
      // A restart request outlives no stop the user asked for.
      if (r.state === 'stopped' && row.desired_state === 'stopped') update.restart_requested_at = null;
      if (r.message !== undefined) update.message = r.message;
      if (r.exitCode !== undefined) update.exit_code = r.exitCode;
      if (r.state === 'running' && from !== 'running') {
        update.started_at = t;
        update.finished_at = null;
        update.exit_code = r.exitCode ?? null;
      }
      if ((r.state === 'stopped' || r.state === 'failed') && from !== r.state) update.finished_at = t;
      // Health describes a running process; a new run starts its checks afresh.
      const seen = JSON.parse(row.observed) as Partial<ObservedOut>;
      if (from === 'running' && r.state !== 'running' && seen.health)
        update.observed = JSON.stringify({ ...seen, health: null });
      if (r.observed)
        update.observed = JSON.stringify({ ...seen, ...(update.observed ? { health: null } : {}), ...r.observed });
      await updateInstance(ctx.trx, id, update);
      if (from !== r.state || r.message !== undefined) {
        ctx.emit({
          type: 'instance.state',
          projectId: row.project_id,
          resourceType: 'instance',
          resourceId: id,
          actor,
          data: {
            from,
            to: r.state,
            message: r.message ?? '',
            exitCode: 'exit_code' in update ? update.exit_code : row.exit_code,
            ...(r.restart ? { restart: update.restarts } : {}),
          },
        });
      }
      // A preempted instance, stopped, leaves its host for the placer to place again.
      const release = releaseOf(row, r.state);
      if (release) {
        await updateInstance(ctx.trx, id, { ...release, updated_at: t });
        ctx.emit({
          type: 'instance.state',
          projectId: row.project_id,
          resourceType: 'instance',
          resourceId: id,
          actor: 'scheduler',
          data: { from: r.state, to: 'pending', message: release.message ?? '', exitCode: null },
        });
        ctx.emit({
          type: 'instance.rescheduled',
          projectId: row.project_id,
          resourceType: 'instance',
          resourceId: id,
          actor: 'scheduler',
          data: {},
        });
        return { ...row, ...update, ...release, updated_at: t } as InstanceRow;
      }
      return { ...row, ...update } as InstanceRow;
    });
  }

  /** Records what the agent observes; a change of health is an event. */
  async observe(hostId: string, id: string, patch: ObservedPatch, actor: string): Promise<InstanceRow> {
    return this.store.write(async ({ trx, emit }) => {
      const row = await findInstance(trx, id);
      if (!row || row.host_id !== hostId)
        throw new ApiError('not_found', `instance ${JSON.stringify(id)} is not assigned to this host`);
      const before = JSON.parse(row.observed) as Partial<ObservedOut>;
      // A check that finished after the instance stopped says nothing about it any more.
      const { health, ...rest } = patch;
      const after = { ...before, ...rest, ...(health !== undefined && row.state === 'running' ? { health } : {}) };
      const t = now();
      const observed = JSON.stringify(after);
      await updateInstance(trx, id, { observed, updated_at: t });
      const from = before.health?.status ?? null;
      const to = after.health?.status ?? null;
      if (from !== to && to !== null) {
        // A health change is news for users, not a new assignment: no host is woken.
        emit({
          type: 'instance.health',
          projectId: row.project_id,
          resourceType: 'instance',
          resourceId: id,
          actor,
          data: { from, to, failingStreak: after.health?.failingStreak ?? 0, output: after.health?.output ?? '' },
        });
      }
      return { ...row, observed, updated_at: t };
    });
  }
}

/** A replica's place in its deployment. */
export interface ReplicaOf {
  deploymentId: string;
  revision: number;
  slot: number;
}

/** What an instance of this spec takes: its kind's defaults, and what it asks for. */
export function resourcesOf(b: Pick<InstanceCreate, 'kind' | 'resources'>): Resources {
  return { ...kindOf(b.kind).resources, ...b.resources };
}

/**
 * Stores a new instance in the caller's write: quota taken, groups and secret
 * references resolved (a refusal throws before anything is stored), the
 * `instance.created` event emitted. The spec has been checked (checkInstanceSpec).
 */
export async function insertNewInstance(
  { trx, emit }: WriteContext,
  projectId: string,
  b: InstanceCreate,
  actor: string,
  replica?: ReplicaOf,
): Promise<InstanceRow> {
  const res = resourcesOf(b);
  const id = newId('ins');
  // A generated name takes 50 random bits of the id: with 30 (six
  // characters) thousands of unnamed creates could collide, a 409 nobody asked for.
  const name = b.name ?? `${b.kind}-${id.slice(-10)}`;
  await reserveQuota(trx, projectId, res);
  const groups = await resolveGroups(trx, projectId, b.groups ?? []);
  await checkSecretRefs(trx, projectId, b.env ?? {});
  const t = now();
  const row: InstanceTable = {
    id,
    project_id: projectId,
    name,
    kind: b.kind,
    image: b.image,
    command: JSON.stringify(b.command ?? []),
    args: JSON.stringify(b.args ?? []),
    env: JSON.stringify(b.env ?? {}),
    vcpus: res.vcpus,
    memory_mib: res.memoryMib,
    disk_gib: res.diskGib,
    labels: JSON.stringify(b.labels ?? {}),
    constraints: JSON.stringify(b.constraints ?? []),
    restart_policy: JSON.stringify(b.restartPolicy ?? { policy: 'never' }),
    restarts: 0,
    options: JSON.stringify(optionsOf(b, groups)),
    pids_limit: b.pidsLimit ?? 4096,
    priority: b.priority ?? PRIORITY_DEFAULT,
    wait_for_capacity: b.waitForCapacity === false ? 0 : 1,
    observed: '{}',
    restart_requested_at: null,
    stop_grace_override: null,
    host_id: null,
    node_id: null,
    desired_state: b.desiredState ?? 'running',
    state: 'pending',
    message: '',
    exit_code: null,
    created_at: t,
    updated_at: t,
    started_at: null,
    finished_at: null,
    deployment_id: replica?.deploymentId ?? null,
    revision: replica?.revision ?? null,
    slot: replica?.slot ?? null,
    preempted_by: null,
    preemption: '',
  };
  try {
    await insertInstance(trx, row);
  } catch (err) {
    // The unique (project, name) index is the duplicate check: one query fewer on every create.
    if (isUniqueViolation(err)) throw conflict(`instance ${JSON.stringify(name)} already exists in this project`);
    throw err;
  }
  await insertLabels(trx, 'instance', row.id, b.labels ?? {});
  await addToGroups(trx, row.id, groups);
  // The environment may hold secrets: events carry names, never values.
  emit({
    type: 'instance.created',
    projectId,
    resourceType: 'instance',
    resourceId: row.id,
    actor,
    data: { name, kind: b.kind, image: b.image },
  });
  return row;
}

/**
 * Deletes an instance in the caller's write. One that no agent holds is gone
 * at once; one on a host goes to `deleting` until its agent reports it
 * destroyed, unless `force` forgets it at once.
 */
export async function deleteInstanceIn(
  ctx: WriteContext,
  row: InstanceRow,
  actor: string,
  force = false,
): Promise<InstanceRow> {
  const held = row.host_id !== null && row.state !== 'pending';
  if (!held || force) return finalizeDelete(ctx, row, actor, force);
  const update = { desired_state: 'deleted', state: 'deleting', updated_at: now() };
  await updateInstance(ctx.trx, row.id, update);
  ctx.emit({
    type: 'instance.deleting',
    projectId: row.project_id,
    resourceType: 'instance',
    resourceId: row.id,
    actor,
    host: row.host_id,
    data: { hostId: row.host_id },
  });
  return { ...row, ...update };
}

/** The options document of a new instance, with defaults filled in (group refs resolved by the caller). */
export function optionsOf(b: InstanceCreate, groups: string[] = []): InstanceOptions {
  const hc = b.healthCheck;
  return {
    workingDir: b.workingDir ?? '',
    groups,
    stopGraceSeconds: b.stopGraceSeconds ?? 10,
    healthCheck: hc
      ? {
          ...hc,
          ...(hc.type === 'http' ? { path: hc.path ?? '/' } : {}),
          intervalSeconds: hc.intervalSeconds ?? 10,
          timeoutSeconds: hc.timeoutSeconds ?? 5,
          retries: hc.retries ?? 3,
          startPeriodSeconds: hc.startPeriodSeconds ?? 0,
        }
      : null,
    ...kindOf(b.kind).options(b),
  };
}

/** The most an instance spec may take, as JSON: far above what a real workload needs, far below what a list can carry. */
export const SPEC_BYTES = 128 * 1024;

/**
 * What a request asks that the schema alone cannot check, its kind's checks
 * and what its kind cannot serve: a 400 before anything is stored.
 */
export function checkInstanceSpec(b: InstanceCreate): void {
  const problems = instanceSpecProblems(b);
  const first = problems[0];
  if (first) throw new ApiError('invalid_request', `${first.field} ${first.message}`, problems);
}

/** What checkInstanceSpec refuses, each problem with its field (`body.x`). */
export function instanceSpecProblems(b: InstanceCreate): Problem[] {
  const problems: Problem[] = [];
  const bytes = Buffer.byteLength(JSON.stringify(b));
  if (bytes > SPEC_BYTES)
    problems.push({
      field: 'body',
      message: `is ${bytes} bytes as JSON; an instance spec may take at most ${SPEC_BYTES}`,
    });
  const kind = findKind(b.kind);
  if (!kind) problems.push({ field: 'body.kind', message: `must be one of ${kindNames.join(', ')}` });
  const hc = b.healthCheck;
  if (hc?.type === 'exec' && !hc.command)
    problems.push({ field: 'body.healthCheck.command', message: 'an exec health check needs a command' });
  if ((hc?.type === 'http' || hc?.type === 'tcp') && hc.port === undefined)
    problems.push({ field: 'body.healthCheck.port', message: `a ${hc.type} health check needs a port` });
  if (hc && hc.type !== 'exec' && hc.command)
    problems.push({ field: 'body.healthCheck.command', message: 'only exec health checks run a command' });
  if (isDiskImageUrl(b.image)) {
    if (kind && !kind.capabilities.diskImageUrls)
      problems.push({
        field: 'body.image',
        message: `is a disk image URL, which only bare-metal instances take; ${kind.plural} take an OCI image reference`,
      });
  } else if (!isImageRef(b.image)) {
    problems.push({
      field: 'body.image',
      message: `is not an OCI image reference (at most ${IMAGE_REF_MAX_LENGTH} characters, a name of at most 255)`,
    });
  }
  if (kind) {
    const unsupported = hc && healthCheckProblem(kind, hc.type);
    if (unsupported) problems.push(unsupported);
    problems.push(...kind.check(b), ...foreignFields(kind, b, kindFields));
  }
  return problems;
}

/** What an agent observes of an instance beyond its state: address, published ports, health. */
export type ObservedPatch = Partial<ObservedOut>;

/** Group names or ids of the instance's project -> ids; an unknown one is a 422 and nothing is stored. */
export async function resolveGroups(trx: Trx, projectId: string, refs: readonly string[]): Promise<string[]> {
  if (refs.length === 0) return [];
  const rows = await groupsByRef(trx, projectId, refs);
  const ids = refs.map(ref => rows.find(r => r.id === ref || r.name === ref)?.id);
  const missing = refs.filter((_, i) => ids[i] === undefined);
  if (missing.length > 0)
    throw new ApiError(
      'unprocessable',
      `no placement group ${missing.map(m => JSON.stringify(m)).join(', ')} in this project`,
      { missing },
    );
  return [...new Set(ids as string[])];
}

async function reserveQuota(trx: Trx, projectId: string, r: Resources): Promise<void> {
  if (await takeQuota(trx, projectId, r)) return;
  const p = await getProjectById(trx, projectId);
  const over = quotaOverage(p, { instances: 1, ...r });
  throw new ApiError('quota_exceeded', `project ${p.name} quota exceeded: ${over.join('; ')}`, { exceeded: over });
}

/** What a project uses, or would use, of each quota. */
export type Usage = Resources & { instances: number };

/**
 * Where `more` on top of the project's usage (less what `freed` gives back)
 * passes its quota, as `vcpus 6+4 > 8`: empty when it fits.
 */
export function quotaOverage(p: ProjectRow, more: Usage, freed: Usage = noUsage): string[] {
  const over: string[] = [];
  const check = (what: string, quota: number | null, used: number, free: number, add: number) => {
    if (quota !== null && used - free + add > quota) over.push(`${what} ${used - free}+${add} > ${quota}`);
  };
  check('instances', p.quota_instances, p.used_instances, freed.instances, more.instances);
  check('vcpus', p.quota_vcpus, p.used_vcpus, freed.vcpus, more.vcpus);
  check('memoryMib', p.quota_memory_mib, p.used_memory_mib, freed.memoryMib, more.memoryMib);
  check('diskGib', p.quota_disk_gib, p.used_disk_gib, freed.diskGib, more.diskGib);
  return over;
}

export const noUsage: Usage = { instances: 0, vcpus: 0, memoryMib: 0, diskGib: 0 };

export async function finalizeDelete(
  { trx, emit }: WriteContext,
  row: InstanceRow,
  actor: string,
  forced = false,
): Promise<InstanceRow> {
  await deleteInstance(trx, row.id);
  await giveQuota(trx, row.project_id, { vcpus: row.vcpus, memoryMib: row.memory_mib, diskGib: row.disk_gib });
  emit({
    type: 'instance.deleted',
    projectId: row.project_id,
    resourceType: 'instance',
    resourceId: row.id,
    actor,
    host: row.host_id,
    data: { name: row.name, hostId: row.host_id, ...(forced ? { forced: true } : {}) },
  });
  return { ...row, state: 'deleted', desired_state: 'deleted', updated_at: now() };
}

/** 404 unless the caller can see the instance's project; 403 unless its role suffices. */
export const instanceGuard =
  (p: UserPrincipal, id: string, role: 'reader' | 'member') =>
  (row: InstanceRow): void => {
    if (!canSee(p, row.project_id)) throw notFound('instance', id);
    requireRole(p, row.project_id, role, id, 'instance');
  };

export async function loadInstance(
  store: Store,
  p: UserPrincipal,
  id: string,
  role: 'reader' | 'member',
): Promise<InstanceRow> {
  const row = await findInstance(store.db, id);
  if (!row) throw notFound('instance', id);
  instanceGuard(p, id, role)(row);
  return row;
}

/** The project a new instance goes to, where the caller must be a member. */
export async function projectForCreate(store: Store, p: UserPrincipal, ref: string): Promise<string> {
  const project = await getProject(store.db, ref);
  requireRole(p, project.id, 'member', ref);
  return project.id;
}

export async function listInstancesFor(
  store: Store,
  p: UserPrincipal,
  o: Omit<InstanceFilter, 'projects' | 'hostId'> & { project: string | undefined; host: string | undefined },
): Promise<InstanceRow[]> {
  let projects: string[] | 'all' = 'all';
  if (o.project !== undefined) {
    const project = await getProject(store.db, o.project);
    requireRole(p, project.id, 'reader', o.project);
    projects = [project.id];
  } else if (!p.clusterAdmin) {
    projects = [...p.roles.keys(), ''];
  }
  let hostId: string | undefined;
  if (o.host !== undefined) hostId = (await findHost(store.db, o.host))?.id ?? '';
  return listInstances(store.db, {
    limit: o.limit,
    after: o.after,
    projects,
    name: o.name,
    state: o.state,
    hostId,
    labels: o.labels,
  });
}

/** The instance a caller may stream from (logs, exec, console) and its host's name; 409 while it has no host. */
export async function streamTarget(
  store: Store,
  p: UserPrincipal,
  id: string,
  role: 'reader' | 'member',
  capability?: 'exec' | 'console',
): Promise<{ row: InstanceRow; hostName: string }> {
  const row = await findInstance(store.db, id);
  if (!row) throw notFound('instance', id);
  requireRole(p, row.project_id, role, id, 'instance');
  // What its kind cannot do, it never will: said before anything about its state.
  if (capability) requireCapability(kindOf(row.kind), capability, row.name);
  if (!row.host_id) throw conflict(`instance ${row.name} is not placed on a host yet (state ${row.state})`);
  return { row, hostName: (await hostName(store.db, row.host_id)) ?? row.host_id };
}
