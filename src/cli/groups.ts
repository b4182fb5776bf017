// `strata group ...`: placement groups (affinity, anti-affinity, spread) at
// any level of the topology, and `strata instance explain`.
import { type Command, Option } from 'commander';
import type { Static } from 'typebox';
import type { PlacementGroup } from '../model/schemas.ts';
import { levels } from '../model/topology.ts';
import { ApiError, enc, type Page } from './client.ts';
import { ctxOf, group, intArg, leaf, listOptions, morePages, type ListFlags } from './common.ts';
import { age, col, out, renderList, renderObject, type Column } from './output.ts';
import { watch } from './watch.ts';

type Group = Static<typeof PlacementGroup>;

const columns: Column<Group>[] = [
  col('NAME', g => g.name),
  col('ID', g => g.id),
  col('POLICY', g => `${g.strength} ${g.policy}${g.policy === 'spread' ? ` (max skew ${g.maxSkew})` : ''}`),
  col('LEVEL', g => g.level),
  col('MEMBERS', g => String(g.members)),
  col('AGE', g => age(g.createdAt)),
];

async function groupId(ctx: ReturnType<typeof ctxOf>, ref: string): Promise<string> {
  if (/^grp_[0-9a-z]{26}$/.test(ref)) return ref;
  const page = await ctx.client.get<Page<Group>>('/v1/groups', { project: ctx.project, limit: 1000 });
  const g = page.items.find(x => x.name === ref);
  if (!g) throw new ApiError(404, 'not_found', `group ${JSON.stringify(ref)} not found in project ${ctx.project}`);
  return g.id;
}

export function groupCommand(): Command {
  const cmd = group(
    'group',
    'manage placement groups: keep instances together, apart or even, at any topology level',
  ).alias('groups');

  cmd.addCommand(
    listOptions(leaf('list', 'list the placement groups of the project').alias('ls'), { labels: false }).action(
      async (o: ListFlags, c: Command) => {
        const ctx = ctxOf(c);
        const render = async () => {
          const page = await ctx.client.list<Group>(
            '/v1/groups',
            { project: ctx.project, limit: o.limit },
            o.all ?? false,
          );
          return (
            (await renderList(page.items, columns, ctx.format, `No placement groups in project ${ctx.project}.`)) +
            morePages(page.nextCursor, ctx.format)
          );
        };
        if (o.watch) await watch(ctx, { project: ctx.project }, render);
        out(await render());
      },
    ),
  );

  cmd.addCommand(
    leaf('create', 'create a placement group; instances join it with `strata run --group NAME`')
      .argument('<name>', 'group name, unique in the project')
      .addOption(
        new Option('--policy <policy>', 'affinity (together), anti-affinity (apart) or spread (even)')
          .choices(['affinity', 'anti-affinity', 'spread'])
          .makeOptionMandatory(),
      )
      .addOption(
        new Option('--level <level>', 'where the rule holds; physical-host sees through nested VM hosts')
          .choices(levels)
          .default('physical-host'),
      )
      .option('--soft', 'a preference the scheduler may break, not a rule')
      .option('--max-skew <n>', 'spread: most members a domain may have above the emptiest (default 1)', intArg(1))
      .addHelpText(
        'after',
        '\nExamples:\n  strata group create db --policy anti-affinity --level physical-host\n  strata group create web --policy spread --level zone --max-skew 1\n  strata run --group db postgres:16',
      )
      .action(
        async (name: string, o: { policy: string; level: string; soft?: boolean; maxSkew?: number }, c: Command) => {
          const ctx = ctxOf(c);
          const g = await ctx.client.post<Group>('/v1/groups', {
            project: ctx.project,
            name,
            policy: o.policy,
            level: o.level,
            strength: o.soft ? 'soft' : 'hard',
            maxSkew: o.maxSkew,
          });
          out(
            ctx.format === 'table'
              ? `group ${g.name} created (${g.id}): ${g.strength} ${g.policy} at the ${g.level} level`
              : await renderObject(g, [], ctx.format),
          );
        },
      ),
  );

  cmd.addCommand(
    leaf('delete', 'delete an empty placement group')
      .alias('rm')
      .argument('<group>', 'group name or id')
      .action(async (ref: string, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        await ctx.client.delete(`/v1/groups/${enc(await groupId(ctx, ref))}`);
        out(`group ${ref} deleted`);
      }),
  );
  return cmd;
}

interface Explanation {
  instance: string;
  host: string | null;
  state: string;
  priority: number;
  waiting: string | null;
  candidates: { host: string; hostName: string; score: number }[];
  refusals: string;
}

/** `strata instance explain`: the scheduler's view of an instance now. */
export function explainCommand(resolve: (ctx: ReturnType<typeof ctxOf>, ref: string) => Promise<string>): Command {
  return leaf(
    'explain',
    'show how the scheduler sees an instance now: the best hosts and why the others cannot take it',
  )
    .argument('<instance>', 'instance name (in the current project) or id')
    .action(async (ref: string, _o: unknown, c: Command) => {
      const ctx = ctxOf(c);
      const id = await resolve(ctx, ref);
      const e = await ctx.client.get<Explanation>(`/v1/instances/${enc(id)}/explain`);
      if (ctx.format !== 'table') return out(await renderObject(e, [], ctx.format));
      const rows = e.candidates.map((x, i) => ({ ...x, rank: String(i + 1) }));
      out(
        [
          ...(e.waiting !== null ? [`Waiting for capacity (priority ${e.priority}): ${e.waiting}`] : []),
          `Refused: ${e.refusals || 'none'}`,
          '',
          await renderList(
            rows,
            [col('RANK', r => r.rank), col('HOST', r => r.hostName), col('SCORE', r => r.score.toFixed(3))],
            'table',
            'No host can take it now.',
          ),
        ].join('\n'),
      );
    });
}
