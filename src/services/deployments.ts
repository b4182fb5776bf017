// Deployments: N replicas of one instance template, kept running by the
// deployments controller (src/controllers/deployments.ts). Its rules:
// - A spec is a template (an instance spec without project, name and desired
//   state), replicas, priority, strategy, paused and labels. Everything is
//   checked before anything is stored, the template as an instance would be
//   (its fields named `body.template.*`), its groups and secrets included.
// - The template with the priority makes a revision, numbered from 1 and
//   hashed; a spec whose template or priority changed makes the next one. A
//   spec that changes nothing writes nothing and emits nothing.
// - Replicas the project's quota cannot hold are refused (422) when the spec is
//   given, counting what the deployment's own instances already hold.
// - Deleting a deployment deletes its replicas through the instance delete
//   path (held ones go `deleting` until their agents confirm), in one write.
import { createHash } from 'node:crypto';
import { ApiError, conflict, invalid } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { now } from '../lib/time.ts';
import type { DeploymentCreate, DeploymentSpec, InstanceCreate, InstanceTemplate } from '../kinds/schemas.ts';
import { fullStrategy, type StrategySpec, strategyProblems } from '../model/deployments.ts';
import type { DesiredState, InstanceState } from '../model/instance-state.ts';
import { restartDecision } from '../model/restart-policy.ts';
import type { HealthCheck, ObservedOut, RestartPolicy } from '../model/schemas.ts';
import {
  deleteDeployment as deleteDeploymentRows,
  findDeployment,
  findRevision,
  insertDeployment,
  insertRevision,
  listDeployments,
  listRevisions,
  replicasOf,
  slotsOf,
  updateDeployment,
  updateRevision,
} from '../store/deployments.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { insertLabels, type LabelTerm, replaceLabels } from '../store/labels.ts';
import { getProject, getProjectById } from '../store/projects.ts';
import type {
  DeploymentRevisionRow,
  DeploymentRow,
  DeploymentSlotRow,
  InstanceRow,
  ProjectRow,
} from '../store/schema.ts';
import type { Store, Trx, WriteContext } from '../store/store.ts';
import { actorOf, listScope, requireRole, visibleRow } from './access.ts';
import type { UserPrincipal } from './auth.ts';
import {
  deleteInstanceIn,
  instanceSpecProblems,
  noUsage,
  quotaOverage,
  resolveGroups,
  resourcesOf,
  type Usage,
} from './instances.ts';
import { writeOrRehearse } from './dry-run.ts';
import { checkSecretRefs } from './secrets.ts';

/** JSON with every object's keys sorted: the same value always hashes the same. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

/** A revision's hash: what its replicas are made of, the template and the priority. */
export function revisionHash(template: InstanceTemplate, priority: number): string {
  return createHash('sha256').update(canonicalJson({ template, priority })).digest('hex');
}

/** Problems of a deployment's spec the schema cannot see; the template's fields are `body.template.*`. */
export function deploymentSpecProblems(spec: DeploymentSpec): { field: string; message: string }[] {
  const asInstance = { ...spec.template, project: '' } as InstanceCreate;
  const template = instanceSpecProblems(asInstance).map(p => ({
    field: p.field === 'body' ? 'body.template' : p.field.replace(/^body\./, 'body.template.'),
    message: p.message.replace('an instance spec may take', 'a template may take'),
  }));
  return [...template, ...strategyProblems(fullStrategy(spec.strategy))];
}

function checkSpec(spec: DeploymentSpec): void {
  const problems = deploymentSpecProblems(spec);
  const first = problems[0];
  if (first) throw new ApiError('invalid_request', `${first.field} ${first.message}`, problems);
}

/**
 * The spec of a replica: its revision's template in the deployment's project,
 * its name, and the revision's priority. The one place a replica's spec is made.
 */
export function replicaSpec(
  d: Pick<DeploymentRow, 'project_id'>,
  rev: Pick<DeploymentRevisionRow, 'template' | 'priority'>,
  name: string,
): InstanceCreate & { priority: number } {
  const template = JSON.parse(rev.template) as InstanceTemplate;
  return { ...template, project: d.project_id, name, priority: rev.priority };
}

/** A replica's name: its deployment, its slot and its revision's hash; `attempt` tells it from a predecessor still going away. */
export function replicaName(deployment: string, slot: number, hash: string, attempt = 0): string {
  const base = `${deployment}-${slot}-${hash.slice(0, 6)}`;
  return attempt === 0 ? base : `${base}-${attempt}`;
}

/** What the controller and the API read of a replica. */
export interface ReplicaView {
  id: string;
  name: string;
  slot: number;
  revision: number;
  state: InstanceState;
  desiredState: DesiredState;
  /** Since when (ms) it has been ready: running and, with a health check, healthy; null when it is not. */
  readySince: number | null;
  /** Ended, and its agent starts it again by its restart policy: not a failure to replace. */
  restarting: boolean;
  message: string;
  host: string | null;
  createdAt: string;
  /** Since when (ms) its host has not been heard from (not ready, down, or the replica lost with it); null while it is. */
  unreachableSince: number | null;
  /** Its host is draining: the replica is to move elsewhere. */
  evicting: boolean;
  /** Running, but its health check has failed `retries` times in a row: to be replaced, as a failure. */
  unhealthy: boolean;
}

/** What the controller reads of a replica's host. */
export interface HostLiveness {
  state: string;
  lastHeartbeatAt: string | null;
}

/**
 * `listeningSince`: when this server began to take heartbeats (ms). A host's
 * silence counts from then at the earliest: while the server was stopped,
 * nobody could hear it.
 */
export function replicaView(r: InstanceRow, host?: HostLiveness, listeningSince = 0): ReplicaView {
  const observed = JSON.parse(r.observed) as Partial<ObservedOut>;
  const options = JSON.parse(r.options) as { healthCheck?: HealthCheck | null };
  // A host not heard from: nobody can say whether the replica still serves. (A
  // lost replica whose host is back waits for what its agent reports.)
  const silent = host !== undefined && (host.state === 'not-ready' || host.state === 'down');
  const unreachableSince = silent
    ? Math.max(Date.parse(host.lastHeartbeatAt ?? r.updated_at), listeningSince)
    : r.state === 'lost' && host === undefined
      ? Date.parse(r.updated_at)
      : null;
  let readySince: number | null = null;
  if (unreachableSince === null && r.state === 'running' && r.desired_state === 'running' && r.started_at) {
    const started = Date.parse(r.started_at);
    if (!options.healthCheck) readySince = started;
    else if (observed.health?.status === 'healthy')
      readySince = Math.max(started, Date.parse(observed.health.changedAt ?? r.started_at));
  }
  const ended = (r.state === 'failed' || r.state === 'stopped') && r.desired_state === 'running';
  const unhealthy =
    unreachableSince === null &&
    r.state === 'running' &&
    r.desired_state === 'running' &&
    !!options.healthCheck &&
    observed.health?.status === 'unhealthy';
  const restarting =
    ended &&
    r.exit_code !== null &&
    restartDecision(JSON.parse(r.restart_policy) as RestartPolicy, r.exit_code, r.restarts).restart;
  return {
    id: r.id,
    name: r.name,
    slot: r.slot ?? 0,
    revision: r.revision ?? 0,
    state: r.state as InstanceState,
    desiredState: r.desired_state as DesiredState,
    readySince,
    restarting,
    message: unhealthy ? `health check failing: ${observed.health?.output || 'no output'}` : r.message,
    host: r.host_id,
    createdAt: r.created_at,
    unreachableSince,
    unhealthy,
    evicting: unreachableSince === null && host?.state === 'draining',
  };
}

/** What a deployment's instances hold of its project's quota (those going away too, until they are gone). */
export function usageOf(rows: readonly InstanceRow[]): Usage {
  return rows.reduce(
    (u, r) => ({
      instances: u.instances + 1,
      vcpus: u.vcpus + r.vcpus,
      memoryMib: u.memoryMib + r.memory_mib,
      diskGib: u.diskGib + r.disk_gib,
    }),
    noUsage,
  );
}

/** Refuses replicas the project's quota cannot hold, beside what the deployment's instances (`mine`) hold now. */
function checkQuota(p: ProjectRow, template: InstanceTemplate, replicas: number, mine: Usage): void {
  const per = resourcesOf(template);
  const need = {
    instances: replicas,
    vcpus: per.vcpus * replicas,
    memoryMib: per.memoryMib * replicas,
    diskGib: per.diskGib * replicas,
  };
  const over = quotaOverage(p, need, mine);
  if (over.length > 0)
    throw new ApiError(
      'quota_exceeded',
      `project ${p.name} quota cannot hold ${replicas} replicas of ${per.vcpus} vCPU, ${per.memoryMib} MiB memory and ${per.diskGib} GiB disk: ${over.join('; ')}`,
      { exceeded: over },
    );
}

/** The template's groups and secrets exist in the project (422 otherwise). */
async function checkReferences(trx: Trx, projectId: string, template: InstanceTemplate): Promise<void> {
  await resolveGroups(trx, projectId, template.groups ?? []);
  await checkSecretRefs(trx, projectId, template.env ?? {});
}

function revisionRow(deploymentId: string, revision: number, spec: DeploymentSpec, t: string): DeploymentRevisionRow {
  const priority = spec.priority ?? 0;
  return {
    deployment_id: deploymentId,
    revision,
    hash: revisionHash(spec.template, priority),
    template: JSON.stringify(spec.template),
    priority,
    created_at: t,
    completed_at: null,
    copied_from: null,
    rolled_back_from: null,
    started_at: null,
    promoted_at: null,
  };
}

/** 404 unless the caller can see the deployment's project; 403 unless its role suffices. */
const guard = (p: UserPrincipal, id: string, row: DeploymentRow | undefined, role: 'reader' | 'member') =>
  visibleRow(p, row, 'deployment', id, role);

export async function loadDeployment(
  store: Store,
  p: UserPrincipal,
  id: string,
  role: 'reader' | 'member',
): Promise<DeploymentRow> {
  return guard(p, id, await findDeployment(store.db, id), role);
}

/** Creates a deployment; `dryRun` answers what would be created and keeps nothing. */
export async function createDeployment(
  store: Store,
  p: UserPrincipal,
  b: DeploymentCreate,
  dryRun = false,
): Promise<DeploymentRow> {
  const project = await getProject(store.db, b.project);
  requireRole(p, project.id, 'member', b.project);
  checkSpec(b);
  const actor = actorOf(p);
  return writeOrRehearse(store, dryRun, async ({ trx, emit }) => {
    await checkReferences(trx, project.id, b.template);
    checkQuota(await getProjectById(trx, project.id), b.template, b.replicas, noUsage);
    const t = now();
    const id = newId('dep');
    const rev = revisionRow(id, 1, b, t);
    const row: DeploymentRow = {
      id,
      project_id: project.id,
      name: b.name,
      labels: JSON.stringify(b.labels ?? {}),
      replicas: b.replicas,
      priority: rev.priority,
      strategy: canonicalJson(fullStrategy(b.strategy)),
      paused: b.paused ? 1 : 0,
      revision: 1,
      generation: 1,
      observed_generation: 0,
      status_replicas: 0,
      status_updated: 0,
      status_ready: 0,
      status_available: 0,
      phase: b.paused ? 'paused' : 'progressing',
      message: '',
      replacements: 0,
      created_at: t,
      updated_at: t,
    };
    try {
      await insertDeployment(trx, row);
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`deployment ${JSON.stringify(b.name)} already exists in this project`);
      throw err;
    }
    await insertRevision(trx, rev);
    await insertLabels(trx, 'deployment', id, b.labels ?? {});
    const common = { projectId: project.id, resourceType: 'deployment', resourceId: id, actor } as const;
    emit({ ...common, type: 'deployment.created', data: { name: b.name, replicas: b.replicas, revision: 1 } });
    emit({ ...common, type: 'deployment.revision-created', data: { revision: 1, hash: rev.hash } });
    return row;
  });
}

/** What the write changed: nothing at all, when the spec was the same. */
export interface Applied {
  row: DeploymentRow;
  changed: string[];
}

/**
 * Replaces a deployment's spec. A changed template or priority makes a new
 * revision; the same spec again changes nothing (no write, no event).
 * `dryRun` answers what would change and keeps nothing.
 */
export async function replaceDeployment(
  store: Store,
  p: UserPrincipal,
  id: string,
  spec: DeploymentSpec,
  dryRun = false,
): Promise<Applied> {
  await loadDeployment(store, p, id, 'reader');
  checkSpec(spec);
  const actor = actorOf(p);
  return writeOrRehearse(store, dryRun, async ctx => {
    const row = guard(p, id, await findDeployment(ctx.trx, id), 'member');
    const current = await findRevision(ctx.trx, id, row.revision);
    const priority = spec.priority ?? 0;
    const hash = revisionHash(spec.template, priority);
    const update: Partial<DeploymentRow> = {};
    const changed: string[] = [];
    const differs = (field: string, stored: unknown, given: unknown) => {
      if (stored === given) return false;
      changed.push(field);
      return true;
    };
    if (!current || canonicalJson(JSON.parse(current.template)) !== canonicalJson(spec.template))
      changed.push('template');
    const newRevision = current?.hash !== hash;
    if (differs('priority', row.priority, priority)) update.priority = priority;
    if (differs('replicas', row.replicas, spec.replicas)) update.replicas = spec.replicas;
    const strategy = canonicalJson(fullStrategy(spec.strategy));
    // (A strategy stored before a field was added reads with that field's default.)
    const stored = canonicalJson(fullStrategy(JSON.parse(row.strategy) as StrategySpec));
    if (differs('strategy', stored, strategy)) update.strategy = strategy;
    const paused = spec.paused ? 1 : 0;
    if (differs('paused', row.paused, paused)) update.paused = paused;
    const labels = spec.labels ?? {};
    if (differs('labels', canonicalJson(JSON.parse(row.labels)), canonicalJson(labels)))
      update.labels = JSON.stringify(labels);
    if (changed.length === 0) return { row, changed };
    if (newRevision || update.replicas !== undefined) {
      await checkReferences(ctx.trx, row.project_id, spec.template);
      const project = await getProjectById(ctx.trx, row.project_id);
      checkQuota(project, spec.template, spec.replicas, usageOf(await replicasOf(ctx.trx, id)));
    }
    const t = now();
    if (newRevision) {
      update.revision = row.revision + 1;
      await insertRevision(ctx.trx, revisionRow(id, update.revision, spec, t));
    }
    if (update.labels !== undefined) await replaceLabels(ctx.trx, 'deployment', id, labels);
    Object.assign(update, { generation: row.generation + 1, updated_at: t });
    await updateDeployment(ctx.trx, id, update);
    // A resumed rollout's deadline counts from the resumption.
    if (!newRevision && update.paused === 0) await updateRevision(ctx.trx, id, row.revision, { started_at: t });
    const revision = update.revision ?? row.revision;
    emitChange(ctx, row, actor, changed, { revision, hash, created: newRevision }, spec.replicas);
    return { row: { ...row, ...update }, changed };
  });
}

function emitChange(
  { emit }: WriteContext,
  row: DeploymentRow,
  actor: string,
  changed: string[],
  { revision, hash, created }: { revision: number; hash: string; created: boolean },
  replicas: number,
): void {
  const common = { projectId: row.project_id, resourceType: 'deployment', resourceId: row.id, actor } as const;
  if (changed.some(f => f !== 'replicas'))
    emit({ ...common, type: 'deployment.updated', data: { fields: changed, revision } });
  if (created) emit({ ...common, type: 'deployment.revision-created', data: { revision, hash } });
  if (changed.includes('replicas'))
    emit({ ...common, type: 'deployment.scaled', data: { from: row.replicas, to: replicas } });
}

/**
 * Goes back to revision `to`: a new revision (the next number, so the newest
 * is always the current one) copying its template and priority. `failed` is
 * the revision an automatic rollback leaves, null for one asked for.
 */
export async function rollBackIn(
  ctx: WriteContext,
  row: DeploymentRow,
  to: DeploymentRevisionRow,
  failed: number | null,
  actor: string,
): Promise<DeploymentRow> {
  const t = now();
  const revision = row.revision + 1;
  await insertRevision(ctx.trx, {
    ...to,
    revision,
    created_at: t,
    completed_at: null,
    copied_from: to.revision,
    rolled_back_from: failed,
    started_at: null,
    promoted_at: null,
  });
  const update = { revision, priority: to.priority, generation: row.generation + 1, updated_at: t };
  await updateDeployment(ctx.trx, row.id, update);
  const common = { projectId: row.project_id, resourceType: 'deployment', resourceId: row.id, actor } as const;
  ctx.emit({
    ...common,
    type: 'deployment.rolled-back',
    data: { from: row.revision, to: to.revision, revision, automatic: failed !== null },
  });
  ctx.emit({ ...common, type: 'deployment.revision-created', data: { revision, hash: to.hash } });
  return { ...row, ...update };
}

/** Lets the current revision's rollout go on past its canaries; its deadline counts from now. */
export async function promoteIn(
  ctx: WriteContext,
  row: DeploymentRow,
  actor: string,
  at: string,
  automatic: boolean,
): Promise<void> {
  await updateRevision(ctx.trx, row.id, row.revision, { promoted_at: at, started_at: at });
  ctx.emit({
    projectId: row.project_id,
    resourceType: 'deployment',
    resourceId: row.id,
    actor,
    type: 'deployment.promoted',
    data: { revision: row.revision, automatic },
  });
}

/**
 * Goes back to `toRevision` (by default the one before the current): a new
 * revision with its template. A revision that does not exist is a 404, one
 * whose template is the current one's a 409; either way nothing changes.
 */
export async function rollbackDeployment(
  store: Store,
  p: UserPrincipal,
  id: string,
  toRevision: number | undefined,
): Promise<DeploymentRow> {
  await loadDeployment(store, p, id, 'reader');
  const actor = actorOf(p);
  return store.write(async ctx => {
    const row = guard(p, id, await findDeployment(ctx.trx, id), 'member');
    const to = toRevision ?? row.revision - 1;
    const target = to >= 1 ? await findRevision(ctx.trx, id, to) : undefined;
    if (!target)
      throw new ApiError(
        'not_found',
        toRevision === undefined
          ? `deployment ${row.name} has no revision before ${row.revision} to go back to`
          : `deployment ${row.name} has no revision ${to} (its revisions are 1 to ${row.revision})`,
      );
    const current = await findRevision(ctx.trx, id, row.revision);
    if (current?.hash === target.hash)
      throw conflict(
        `revision ${to} of deployment ${row.name} is what revision ${row.revision}, the current one, runs`,
      );
    await checkReferences(ctx.trx, row.project_id, JSON.parse(target.template) as InstanceTemplate);
    return rollBackIn(ctx, row, target, null, actor);
  });
}

/** Lets the current revision's rollout go on past its canaries (409 when none wait). */
export async function promoteDeployment(store: Store, p: UserPrincipal, id: string): Promise<DeploymentRow> {
  await loadDeployment(store, p, id, 'reader');
  const actor = actorOf(p);
  return store.write(async ctx => {
    const row = guard(p, id, await findDeployment(ctx.trx, id), 'member');
    const current = await findRevision(ctx.trx, id, row.revision);
    const canary = fullStrategy(JSON.parse(row.strategy) as StrategySpec).canary;
    if (canary === 0 || !current || current.promoted_at !== null || current.completed_at !== null)
      throw conflict(`no canaries of deployment ${row.name} wait for a promotion (revision ${row.revision})`);
    await promoteIn(ctx, row, actor, now(), false);
    return row;
  });
}

/** Pauses or resumes a deployment's rollouts; a resumed rollout's deadline counts from now. */
export async function setPaused(store: Store, p: UserPrincipal, id: string, paused: boolean): Promise<Applied> {
  await loadDeployment(store, p, id, 'reader');
  const actor = actorOf(p);
  return store.write(async ctx => {
    const row = guard(p, id, await findDeployment(ctx.trx, id), 'member');
    if ((row.paused === 1) === paused) return { row, changed: [] };
    const t = now();
    const update = { paused: paused ? 1 : 0, generation: row.generation + 1, updated_at: t };
    await updateDeployment(ctx.trx, id, update);
    if (!paused) await updateRevision(ctx.trx, id, row.revision, { started_at: t });
    ctx.emit({
      projectId: row.project_id,
      resourceType: 'deployment',
      resourceId: id,
      actor,
      type: 'deployment.updated',
      data: { fields: ['paused'], revision: row.revision },
    });
    return { row: { ...row, ...update }, changed: ['paused'] };
  });
}

/** A new replica count; the same count again changes nothing. */
export async function scaleDeployment(store: Store, p: UserPrincipal, id: string, replicas: number): Promise<Applied> {
  await loadDeployment(store, p, id, 'reader');
  const actor = actorOf(p);
  return store.write(async ctx => {
    const row = guard(p, id, await findDeployment(ctx.trx, id), 'member');
    if (row.replicas === replicas) return { row, changed: [] };
    const current = await findRevision(ctx.trx, id, row.revision);
    if (!current) throw conflict(`deployment ${row.name} has no revision ${row.revision}`);
    const template = JSON.parse(current.template) as InstanceTemplate;
    const project = await getProjectById(ctx.trx, row.project_id);
    checkQuota(project, template, replicas, usageOf(await replicasOf(ctx.trx, id)));
    const update = { replicas, generation: row.generation + 1, updated_at: now() };
    await updateDeployment(ctx.trx, id, update);
    emitChange(ctx, row, actor, ['replicas'], { revision: row.revision, hash: current.hash, created: false }, replicas);
    return { row: { ...row, ...update }, changed: ['replicas'] };
  });
}

/** Deletes a deployment and, through the instance delete path, its replicas. */
export async function removeDeployment(store: Store, p: UserPrincipal, id: string): Promise<DeploymentRow> {
  await loadDeployment(store, p, id, 'reader');
  const actor = actorOf(p);
  return store.write(async ctx => {
    const row = guard(p, id, await findDeployment(ctx.trx, id), 'member');
    const replicas = await replicasOf(ctx.trx, id);
    for (const r of replicas) if (r.desired_state !== 'deleted') await deleteInstanceIn(ctx, r, actor);
    await deleteDeploymentRows(ctx.trx, id);
    ctx.emit({
      type: 'deployment.deleted',
      projectId: row.project_id,
      resourceType: 'deployment',
      resourceId: id,
      actor,
      data: { name: row.name, replicas: replicas.length },
    });
    return row;
  });
}

export async function listDeploymentsFor(
  store: Store,
  p: UserPrincipal,
  o: {
    project: string | undefined;
    name: string | undefined;
    limit: number;
    after: string | undefined;
    labels: LabelTerm[];
  },
): Promise<DeploymentRow[]> {
  const projects = await listScope(store.db, p, o.project);
  return listDeployments(store.db, { projects, name: o.name, limit: o.limit, after: o.after, labels: o.labels });
}

/** What a deployment's answer shows beside its row: its current revision, its slots' backoff, its replicas. */
export interface DeploymentFacts {
  revision: DeploymentRevisionRow | undefined;
  slots: DeploymentSlotRow[];
  replicas: InstanceRow[];
}

export async function deploymentFacts(
  store: Store,
  rows: readonly DeploymentRow[],
  withReplicas: boolean,
): Promise<Map<string, DeploymentFacts>> {
  return store.read(async trx => {
    const slots = await slotsOf(
      trx,
      rows.map(r => r.id),
    );
    const out = new Map<string, DeploymentFacts>();
    for (const r of rows)
      out.set(r.id, {
        revision: await findRevision(trx, r.id, r.revision),
        slots: slots.filter(s => s.deployment_id === r.id),
        replicas: withReplicas ? await replicasOf(trx, r.id) : [],
      });
    return out;
  });
}

export async function revisionsOf(
  store: Store,
  p: UserPrincipal,
  id: string,
  o: { limit: number; before: number | undefined },
): Promise<DeploymentRevisionRow[]> {
  await loadDeployment(store, p, id, 'reader');
  return listRevisions(store.db, id, o);
}

/** A revisions cursor: the revision the previous page ended at. */
export function revisionCursor(after: string | undefined): number | undefined {
  if (after === undefined) return undefined;
  const n = Number(after);
  if (!Number.isSafeInteger(n) || n < 1) throw invalid('cursor is not one this server issued', { cursor: after });
  return n;
}
