// /v1/deployments: N replicas of one instance template, kept running and
// replaced revision by revision (src/services/deployments.ts has the rules).
import type { DeploymentRevisionRow, DeploymentRow, DeploymentSlotRow } from '../store/schema.ts';
import { requireUser } from '../services/access.ts';
import {
  createDeployment,
  type DeploymentFacts,
  deploymentFacts,
  listDeploymentsFor,
  loadDeployment,
  removeDeployment,
  replaceDeployment,
  replicaView,
  revisionCursor,
  revisionsOf,
  promoteDeployment,
  rollbackDeployment,
  scaleDeployment,
  setPaused,
} from '../services/deployments.ts';
import {
  Deployment,
  DeploymentCreate,
  DeploymentDetail,
  type DeploymentDetailOut,
  type DeploymentOut,
  DeploymentSpec,
  type InstanceTemplate,
  Revision,
  type RevisionOut,
} from '../kinds/schemas.ts';
import {
  DeploymentListQuery,
  DeploymentRollback,
  DeploymentScale,
  type DeploymentStatusOut,
  type RolloutPhase,
  fullStrategy,
  type StrategyOut,
} from '../model/deployments.ts';
import { DryRunQuery, IdParam, Page, PageQuery } from '../model/schemas.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { deploymentSpecCompiler } from './deployment-spec.ts';
import { decodeCursor, encodeCursor, pageOf, parseSelector } from './paging.ts';

const tags = ['deployments'];

const json = <T>(text: string): T => JSON.parse(text) as T;

function presentStatus(
  d: DeploymentRow,
  slots: readonly DeploymentSlotRow[],
  revision: DeploymentRevisionRow | undefined,
): DeploymentStatusOut {
  return {
    observedGeneration: d.observed_generation,
    replicas: d.status_replicas,
    updatedReplicas: d.status_updated,
    readyReplicas: d.status_ready,
    availableReplicas: d.status_available,
    phase: d.phase as RolloutPhase,
    message: d.message,
    replacements: d.replacements,
    backoff: slots
      .filter(s => s.failures > 0)
      .map(s => ({ slot: s.slot, failures: s.failures, retryAt: s.retry_at, reason: s.reason })),
    rolledBackFrom: revision?.rolled_back_from ?? null,
  };
}

export function presentDeployment(d: DeploymentRow, f: DeploymentFacts | undefined): DeploymentOut {
  return {
    id: d.id,
    project: d.project_id,
    name: d.name,
    labels: json(d.labels),
    template: f?.revision ? json<InstanceTemplate>(f.revision.template) : ({} as InstanceTemplate),
    replicas: d.replicas,
    priority: d.priority,
    strategy: fullStrategy(json<StrategyOut>(d.strategy)),
    paused: d.paused === 1,
    revision: d.revision,
    generation: d.generation,
    status: presentStatus(d, f?.slots ?? [], f?.revision),
    createdAt: d.created_at,
    updatedAt: d.updated_at,
  };
}

function presentDetail(d: DeploymentRow, f: DeploymentFacts | undefined): DeploymentDetailOut {
  return {
    ...presentDeployment(d, f),
    instances: (f?.replicas ?? []).map(r => {
      const v = replicaView(r);
      return {
        id: v.id,
        name: v.name,
        slot: v.slot,
        revision: v.revision,
        state: v.state,
        desiredState: v.desiredState,
        ready: v.readySince !== null,
        host: v.host,
        message: v.message,
        createdAt: v.createdAt,
      };
    }),
  };
}

function presentRevision(r: DeploymentRevisionRow): RevisionOut {
  return {
    revision: r.revision,
    hash: r.hash,
    template: json<InstanceTemplate>(r.template),
    priority: r.priority,
    createdAt: r.created_at,
    completedAt: r.completed_at,
    promotedAt: r.promoted_at,
    copiedFrom: r.copied_from,
    rolledBackFrom: r.rolled_back_from,
  };
}

export function deploymentRoutes(app: App, { store }: RouteDeps): void {
  /** A deployment as stored, or (`rehearsed`: a dry run's spec) as it would be. */
  const present = async (row: DeploymentRow, rehearsed?: { template: InstanceTemplate }) => {
    const facts = (await deploymentFacts(store, [row], false)).get(row.id);
    const out = presentDeployment(row, facts);
    return rehearsed ? { ...out, template: rehearsed.template } : out;
  };

  app.get(
    '/deployments',
    {
      schema: {
        tags,
        summary: 'List deployments of the projects you can see',
        querystring: DeploymentListQuery,
        response: { 200: Page(Deployment) },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const q = req.query;
      const limit = q.limit ?? 100;
      const rows = await listDeploymentsFor(store, p, {
        project: q.project,
        name: q.name,
        limit,
        after: decodeCursor(q.cursor),
        labels: parseSelector(q.labels),
      });
      const page = pageOf(rows, limit);
      const facts = await deploymentFacts(store, page.rows, false);
      return { items: page.rows.map(r => presentDeployment(r, facts.get(r.id))), nextCursor: page.nextCursor };
    },
  );

  app.post(
    '/deployments',
    {
      schema: {
        tags,
        summary: 'Create a deployment (members): its controller creates the replicas',
        querystring: DryRunQuery,
        body: DeploymentCreate,
        response: { 200: Deployment, 201: Deployment },
      },
      validatorCompiler: deploymentSpecCompiler,
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      const dryRun = req.query.dryRun ?? false;
      const row = await createDeployment(store, p, req.body, dryRun);
      return reply.code(dryRun ? 200 : 201).send(await present(row, dryRun ? req.body : undefined));
    },
  );

  app.get(
    '/deployments/:id',
    {
      schema: {
        tags,
        summary: 'Show a deployment: its spec, its status and its replicas',
        params: IdParam,
        response: { 200: DeploymentDetail },
      },
    },
    async req => {
      const row = await loadDeployment(store, requireUser(principalOf(req)), req.params.id, 'reader');
      return presentDetail(row, (await deploymentFacts(store, [row], true)).get(row.id));
    },
  );

  app.put(
    '/deployments/:id',
    {
      schema: {
        tags,
        summary:
          "Replace a deployment's spec (members): a changed template or priority makes a new revision; the same spec changes nothing",
        params: IdParam,
        querystring: DryRunQuery,
        body: DeploymentSpec,
        response: { 200: Deployment },
      },
      validatorCompiler: deploymentSpecCompiler,
    },
    async req => {
      const p = requireUser(principalOf(req));
      const dryRun = req.query.dryRun ?? false;
      const { row } = await replaceDeployment(store, p, req.params.id, req.body, dryRun);
      return present(row, dryRun ? req.body : undefined);
    },
  );

  app.patch(
    '/deployments/:id',
    {
      schema: {
        tags,
        summary: 'Scale a deployment (members): extra replicas go, highest slots first; missing ones are created',
        params: IdParam,
        body: DeploymentScale,
        response: { 200: Deployment },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const { row } = await scaleDeployment(store, p, req.params.id, req.body.replicas);
      return present(row);
    },
  );

  app.delete(
    '/deployments/:id',
    {
      schema: {
        tags,
        summary: 'Delete a deployment (members) and its replicas; answers 202 while their hosts tear them down',
        params: IdParam,
        response: { 202: Deployment },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      const facts = await deploymentFacts(store, [await loadDeployment(store, p, req.params.id, 'reader')], false);
      const row = await removeDeployment(store, p, req.params.id);
      return reply.code(202).send(presentDeployment(row, facts.get(row.id)));
    },
  );

  app.get(
    '/deployments/:id/revisions',
    {
      schema: {
        tags,
        summary: "A deployment's revisions, newest first: each template it has had",
        params: IdParam,
        querystring: PageQuery,
        response: { 200: Page(Revision) },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const limit = req.query.limit ?? 100;
      const before = revisionCursor(decodeCursor(req.query.cursor));
      const rows = await revisionsOf(store, p, req.params.id, { limit, before });
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      return {
        items: items.map(presentRevision),
        nextCursor: rows.length > limit && last ? encodeCursor(String(last.revision)) : null,
      };
    },
  );

  app.post(
    '/deployments/:id/rollback',
    {
      schema: {
        tags,
        summary:
          'Roll a deployment back (members): a new revision with the template of `toRevision` (default: the one before); 404 for a revision that does not exist',
        params: IdParam,
        body: DeploymentRollback,
        response: { 200: Deployment },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      return present(await rollbackDeployment(store, p, req.params.id, req.body.toRevision));
    },
  );

  app.post(
    '/deployments/:id/promote',
    {
      schema: {
        tags,
        summary: "Promote a rollout's canaries (members): the rest of the replicas roll out; 409 when none wait",
        params: IdParam,
        response: { 200: Deployment },
      },
    },
    async req => present(await promoteDeployment(store, requireUser(principalOf(req)), req.params.id)),
  );

  for (const [action, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const)
    app.post(
      `/deployments/:id/${action}`,
      {
        schema: {
          tags,
          summary: paused
            ? "Pause a deployment's rollouts (members): it still scales and replaces failed replicas"
            : "Resume a deployment's rollouts (members): the progress deadline counts from now",
          params: IdParam,
          response: { 200: Deployment },
        },
      },
      async req => present((await setPaused(store, requireUser(principalOf(req)), req.params.id, paused)).row),
    );
}
