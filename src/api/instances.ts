// /v1/instances: containers, VMs and bare-metal machines, one resource.
import { Type } from 'typebox';
import type { InstanceRow } from '../store/schema.ts';
import type { UserPrincipal } from '../services/auth.ts';
import { actorOf, requireUser } from '../services/access.ts';
import { instanceGuard, listInstancesFor, loadInstance, projectForCreate } from '../services/instances.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { instanceSpecCompiler } from './instance-spec.ts';
import { decodeCursor, pageOf, parseSelector } from './paging.ts';
import { presentInstance } from './present.ts';
import { explain } from '../services/placement.ts';
import { Instance, InstanceCreate } from '../kinds/schemas.ts';
import { DryRunQuery, IdParam, InstanceListQuery, Page } from '../model/schemas.ts';

const tags = ['instances'];

/** About what an instance takes in a list answer: its variable-length columns. */
const instanceBytes = (r: InstanceRow): number =>
  512 +
  r.name.length +
  r.image.length +
  r.command.length +
  r.args.length +
  r.env.length +
  r.labels.length +
  r.constraints.length +
  r.options.length +
  r.observed.length +
  r.message.length;

const StopQuery = Type.Object(
  {
    force: Type.Optional(Type.Boolean({ description: 'a hard stop: no grace period (a VM is switched off)' })),
    graceSeconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 3600, description: "this stop's grace period instead of the instance's" }),
    ),
  },
  { additionalProperties: false },
);

const DeleteQuery = Type.Object(
  {
    force: Type.Optional(
      Type.Boolean({
        description:
          "forget the instance at once, without its host's word: for a host that is down or gone. Should the host come back, its agent removes the workload.",
      }),
    ),
  },
  { additionalProperties: false },
);

export function instanceRoutes(app: App, { store, services }: RouteDeps): void {
  const load = (p: UserPrincipal, id: string, role: 'reader' | 'member'): Promise<InstanceRow> =>
    loadInstance(store, p, id, role);

  app.get(
    '/instances',
    {
      schema: {
        tags,
        summary: 'List instances of the projects you can see',
        querystring: InstanceListQuery,
        response: { 200: Page(Instance) },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const qs = req.query;
      const limit = qs.limit ?? 100;
      const after = decodeCursor(qs.cursor);
      const labels = parseSelector(qs.labels);
      const o = { project: qs.project, host: qs.host, limit, after, name: qs.name, state: qs.state, labels };
      const { rows, nextCursor } = pageOf(await listInstancesFor(store, p, o), limit, instanceBytes);
      return { items: rows.map(presentInstance), nextCursor };
    },
  );

  app.post(
    '/instances',
    {
      schema: {
        tags,
        summary: 'Create an instance (members); it is placed and started at once',
        querystring: DryRunQuery,
        body: InstanceCreate,
        response: { 200: Instance, 201: Instance },
      },
      validatorCompiler: instanceSpecCompiler,
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      const projectId = await projectForCreate(store, p, req.body.project);
      const dryRun = req.query.dryRun ?? false;
      const row = await services.instances.create(projectId, req.body, actorOf(p), dryRun);
      return reply.code(dryRun ? 200 : 201).send(presentInstance(row));
    },
  );

  app.get(
    '/instances/:id',
    { schema: { tags, summary: 'Show an instance', params: IdParam, response: { 200: Instance } } },
    async req => {
      const p = requireUser(principalOf(req));
      return presentInstance(await load(p, req.params.id, 'reader'));
    },
  );

  app.post(
    '/instances/:id/start',
    { schema: { tags, summary: 'Ask for the instance to be running', params: IdParam, response: { 202: Instance } } },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await load(p, req.params.id, 'reader');
      const row = await services.instances.setDesired(
        req.params.id,
        'running',
        actorOf(p),
        instanceGuard(p, req.params.id, 'member'),
      );
      return reply.code(202).send(presentInstance(row));
    },
  );

  app.post(
    '/instances/:id/stop',
    {
      schema: {
        tags,
        summary:
          "Ask for the instance to be stopped: a polite signal (a VM's power button), then a kill after the grace period",
        params: IdParam,
        querystring: StopQuery,
        response: { 202: Instance },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await load(p, req.params.id, 'reader');
      const grace = req.query.force ? 0 : req.query.graceSeconds;
      const row = await services.instances.setDesired(
        req.params.id,
        'stopped',
        actorOf(p),
        instanceGuard(p, req.params.id, 'member'),
        grace,
      );
      return reply.code(202).send(presentInstance(row));
    },
  );

  for (const [verb, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    app.post(
      `/instances/:id/${verb}`,
      {
        schema: {
          tags,
          summary: paused
            ? 'Pause a running instance: its processes (or its whole VM) are frozen in place'
            : 'Resume a paused instance',
          params: IdParam,
          response: { 202: Instance },
        },
      },
      async (req, reply) => {
        const p = requireUser(principalOf(req));
        await load(p, req.params.id, 'reader');
        const row = await services.instances.pause(
          req.params.id,
          paused,
          actorOf(p),
          instanceGuard(p, req.params.id, 'member'),
        );
        return reply.code(202).send(presentInstance(row));
      },
    );
  }

  app.post(
    '/instances/:id/restart',
    {
      schema: {
        tags,
        summary:
          'Restart the instance: stop it (signal, grace, kill) and start it again; starts one that is not running',
        params: IdParam,
        response: { 202: Instance },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await load(p, req.params.id, 'reader');
      const row = await services.instances.restart(
        req.params.id,
        actorOf(p),
        instanceGuard(p, req.params.id, 'member'),
      );
      return reply.code(202).send(presentInstance(row));
    },
  );

  app.get(
    '/instances/:id/explain',
    {
      schema: {
        tags,
        summary: "How the scheduler sees the instance now: the best hosts' scores and why the others cannot take it",
        params: IdParam,
        response: {
          200: Type.Object({
            instance: Type.String(),
            host: Type.Union([Type.String(), Type.Null()]),
            state: Type.String(),
            priority: Type.Integer(),
            waiting: Type.Union([Type.String(), Type.Null()], {
              description:
                'while the instance waits in pending for capacity: why no host could take it at its last try, e.g. "3 hosts: 2 lack memory, 1 constraint topology.zone == b"',
            }),
            candidates: Type.Array(Type.Object({ host: Type.String(), hostName: Type.String(), score: Type.Number() })),
            refusals: Type.String({
              description: 'e.g. "12 hosts: 7 lack memory, 3 anti-affinity physical-host, 2 draining"',
            }),
          }),
        },
      },
    },
    async req => {
      const p = requireUser(principalOf(req));
      const row = await load(p, req.params.id, 'reader');
      return explain(store, row);
    },
  );

  app.delete(
    '/instances/:id',
    {
      schema: {
        tags,
        summary:
          'Delete an instance; answers 202 while its agent tears it down (204 when nothing holds it, or with ?force=true)',
        params: IdParam,
        querystring: DeleteQuery,
        response: { 202: Instance, 204: Type.Null() },
      },
    },
    async (req, reply) => {
      const p = requireUser(principalOf(req));
      await load(p, req.params.id, 'reader');
      const row = await services.instances.delete(
        req.params.id,
        actorOf(p),
        instanceGuard(p, req.params.id, 'member'),
        req.query.force ?? false,
      );
      if (row.state === 'deleted') return reply.code(204).send(null);
      return reply.code(202).send(presentInstance(row));
    },
  );
}
