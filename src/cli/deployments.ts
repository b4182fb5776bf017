// `strata deployment ...`: N replicas of one instance template, kept running
// and replaced revision by revision. They are written in spec files (strata
// apply -f); these commands look at them, scale and delete them. Commands that
// take a deployment accept its id or its name in the current project.
import type { Command } from 'commander';
import { ApiError, type Deployment, type DeploymentDetail, enc, type Page, type Revision } from './client.ts';
import { ctxOf, type Ctx, group, intArg, leaf, listOptions, type ListFlags, morePages } from './common.ts';
import { age, col, type Column, labelsText, out, renderList, renderObject, shellQuote } from './output.ts';
import { watch } from './watch.ts';

const DEPLOYMENT_ID = /^dep_[0-9a-z]{26}$/;

/** A deployment by name in a project, or undefined. */
export async function findDeployment(ctx: Ctx, project: string, name: string): Promise<Deployment | undefined> {
  const page = await ctx.client.get<Page<Deployment>>('/v1/deployments', { project, name, limit: 1 });
  return page.items[0];
}

export async function deploymentId(ctx: Ctx, ref: string): Promise<string> {
  if (DEPLOYMENT_ID.test(ref)) return ref;
  const d = await findDeployment(ctx, ctx.project, ref);
  if (!d) throw new ApiError(404, 'not_found', `deployment ${JSON.stringify(ref)} not found in project ${ctx.project}`);
  return d.id;
}

const readyText = (d: Deployment) => `${d.status.availableReplicas}/${d.replicas}`;

const phaseText = (d: Deployment) =>
  d.status.observedGeneration < d.generation ? `${d.status.phase} (applying)` : d.status.phase;

const columns: Column<Deployment>[] = [
  col('NAME', d => d.name),
  col('READY', readyText),
  col('UP-TO-DATE', d => d.status.updatedReplicas),
  col('REVISION', d => d.revision),
  col('PHASE', phaseText),
  col('IMAGE', d => d.template.image),
  col('AGE', d => age(d.createdAt)),
];

const intOrPercent = (v: number | string) => (typeof v === 'number' ? String(v) : v);

function fields(d: DeploymentDetail): [string, unknown][] {
  const s = d.status;
  const t = d.template;
  return [
    ['Name', d.name],
    ['ID', d.id],
    ['Project', d.project],
    ['Labels', labelsText(d.labels)],
    [
      'Replicas',
      `${d.replicas} wanted: ${s.replicas} live, ${s.updatedReplicas} up to date, ${s.readyReplicas} ready, ${s.availableReplicas} available`,
    ],
    ['Phase', phaseText(d)],
    ['Message', s.message],
    ['Revision', d.revision],
    ['Generation', `${d.generation} (the controller has seen ${s.observedGeneration})`],
    ['Replacements', s.replacements],
    [
      'Backoff',
      s.backoff
        .map(b => `slot ${b.slot}: ${b.failures} failed in a row (${b.reason}), next try ${b.retryAt ?? 'now'}`)
        .join('; '),
    ],
    ['Paused', d.paused ? 'yes' : 'no'],
    ['Priority', d.priority],
    [
      'Strategy',
      `max surge ${intOrPercent(d.strategy.maxSurge)}, max unavailable ${intOrPercent(d.strategy.maxUnavailable)}, healthy after ${d.strategy.minHealthySeconds}s, deadline ${d.strategy.progressDeadlineSeconds}s, lost-host grace ${d.strategy.lostGraceSeconds}s`,
    ],
    ['Kind', t.kind],
    ['Image', t.image],
    ['Command', [...(t.command ?? []), ...(t.args ?? [])].map(shellQuote).join(' ')],
    ['Created', d.createdAt],
  ];
}

async function showText(d: DeploymentDetail): Promise<string> {
  const replicas = await renderList(
    d.instances,
    [
      col('INSTANCE', i => i.name),
      col('SLOT', i => i.slot),
      col('REVISION', i => i.revision),
      col('STATE', i => (i.desiredState === 'deleted' ? `${i.state} (going)` : i.state)),
      col('READY', i => (i.ready ? 'yes' : 'no')),
      col('AGE', i => age(i.createdAt)),
    ],
    'table',
    'No replicas.',
  );
  return `${await renderObject(d, fields(d), 'table')}\n\n${replicas}`;
}

export function deploymentCommand(): Command {
  const cmd = group(
    'deployment',
    'look at, scale and delete deployments: replicas of one instance template (write them in a spec file: strata apply -f)',
  ).alias('deployments');

  cmd.addCommand(
    listOptions(leaf('list', 'list the deployments of the project').alias('ls')).action(
      async (o: ListFlags, c: Command) => {
        const ctx = ctxOf(c);
        const render = async () => {
          const page = await ctx.client.list<Deployment>(
            '/v1/deployments',
            { project: ctx.project, labels: o.labels, limit: o.limit },
            o.all ?? false,
          );
          return (
            (await renderList(page.items, columns, ctx.format, `No deployments in project ${ctx.project}.`)) +
            morePages(page.nextCursor, ctx.format)
          );
        };
        if (o.watch) await watch(ctx, { project: ctx.project }, render);
        out(await render());
      },
    ),
  );

  cmd.addCommand(
    leaf('show', 'show a deployment: its spec, its status (rollout, backoff) and its replicas')
      .argument('<deployment>', 'deployment name (in the current project) or id')
      .option('-w, --watch', 're-render on every change in its project (Ctrl-C to stop)')
      .action(async (ref: string, o: { watch?: boolean }, c: Command) => {
        const ctx = ctxOf(c);
        const id = await deploymentId(ctx, ref);
        const render = async () => {
          const d = await ctx.client.get<DeploymentDetail>(`/v1/deployments/${enc(id)}`);
          return ctx.format === 'table' ? showText(d) : renderObject(d, [], ctx.format);
        };
        if (o.watch) await watch(ctx, { project: ctx.project }, render);
        out(await render());
      }),
  );

  cmd.addCommand(
    leaf('scale', 'set how many replicas a deployment keeps: extra ones go, highest slots first')
      .argument('<deployment>', 'deployment name (in the current project) or id')
      .argument('<replicas>', 'the new count', intArg(0))
      .addHelpText('after', '\nExample:\n  strata deployment scale web 5')
      .action(async (ref: string, replicas: number, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        const id = await deploymentId(ctx, ref);
        const d = await ctx.client.patch<Deployment>(`/v1/deployments/${enc(id)}`, { replicas });
        out(
          ctx.format === 'table'
            ? `deployment ${d.name} scaled to ${d.replicas} replicas`
            : await renderObject(d, [], ctx.format),
        );
      }),
  );

  cmd.addCommand(
    leaf('revisions', "list a deployment's revisions, newest first: each template it has had")
      .argument('<deployment>', 'deployment name (in the current project) or id')
      .action(async (ref: string, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        const id = await deploymentId(ctx, ref);
        const page = await ctx.client.list<Revision>(`/v1/deployments/${enc(id)}/revisions`, {}, true);
        out(
          await renderList(
            page.items,
            [
              col('REVISION', r => r.revision),
              col('HASH', r => r.hash.slice(0, 12)),
              col('IMAGE', r => r.template.image),
              col('CREATED', r => age(r.createdAt)),
            ],
            ctx.format,
          ),
        );
      }),
  );

  cmd.addCommand(
    leaf('delete', 'delete deployments and their replicas (their hosts tear them down)')
      .alias('rm')
      .argument('<deployment...>', 'deployment names (in the current project) or ids')
      .action(async (refs: string[], _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        for (const ref of refs) {
          const d = await ctx.client.delete<Deployment>(`/v1/deployments/${enc(await deploymentId(ctx, ref))}`);
          out(
            ctx.format === 'table'
              ? `deployment ${d.name} deleted; its replicas are going`
              : await renderObject(d, [], ctx.format),
          );
        }
      }),
  );
  return cmd;
}
