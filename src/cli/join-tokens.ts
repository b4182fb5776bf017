// `strata join-token ...`: secrets agents present once to register their host.
import type { Command } from 'commander';
import { enc, type JoinToken, type JoinTokenCreated } from './client.ts';
import { ctxOf, group, leaf, listOptions, morePages, parseDuration, type ListFlags } from './common.ts';
import { age, col, out, renderList, type Column } from './output.ts';
import { expires, printSecret } from './tokens.ts';
import { watch } from './watch.ts';

const columns: Column<JoinToken>[] = [
  col('ID', t => t.id),
  col('DESCRIPTION', t => t.description),
  col('POOL', t => t.pool ?? 'shared'),
  col('EXPIRES', t => expires(t.expiresAt)),
  col('AGE', t => age(t.createdAt)),
];

export function joinTokenCommand(): Command {
  const cmd = group('join-token', 'manage join tokens, with which agents register hosts (cluster admins)').alias(
    'join-tokens',
  );

  cmd.addCommand(
    listOptions(leaf('list', 'list join tokens').alias('ls'), { labels: false }).action(
      async (o: ListFlags, c: Command) => {
        const ctx = ctxOf(c);
        const render = async () => {
          const page = await ctx.client.list<JoinToken>('/v1/join-tokens', { limit: o.limit }, o.all ?? false);
          return (await renderList(page.items, columns, ctx.format)) + morePages(page.nextCursor, ctx.format);
        };
        if (o.watch) await watch(ctx, {}, render);
        out(await render());
      },
    ),
  );

  cmd.addCommand(
    leaf('create', 'create a join token and print its secret once')
      .option('-d, --description <text>', 'what it is for')
      .option('--pool <project>', 'hosts that join with it are dedicated to this project')
      .option(
        '--expires-in <duration>',
        'lifetime: 3600 (seconds), 45m, 12h, 30d, 2w (default: never expires)',
        parseDuration,
      )
      .addHelpText('after', '\nThen, on the new host:\n  strata agent --server URL --join-token SECRET')
      .action(async (o: { description?: string; pool?: string; expiresIn?: number }, c: Command) => {
        const ctx = ctxOf(c);
        const t = await ctx.client.post<JoinTokenCreated>('/v1/join-tokens', {
          description: o.description,
          pool: o.pool,
          expiresInSeconds: o.expiresIn,
        });
        await printSecret(t, 'join token', ctx.format);
      }),
  );

  cmd.addCommand(
    leaf('delete', 'revoke a join token (hosts that already joined stay)')
      .alias('rm')
      .argument('<id>', 'join token id')
      .action(async (id: string, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        await ctx.client.delete(`/v1/join-tokens/${enc(id)}`);
        out(`join token ${id} revoked`);
      }),
  );
  return cmd;
}
