// `strata token ...`: API tokens. A token's secret is printed once, at creation;
// the server keeps only its hash.
import type { Command } from 'commander';
import { enc, type Token, type TokenCreated } from './client.ts';
import { ctxOf, group, leaf, listOptions, morePages, parseDuration, type ListFlags } from './common.ts';
import { age, col, note, span, out, renderList, renderObject, type Column } from './output.ts';
import { watch } from './watch.ts';

export function expires(at: string | null): string {
  if (!at) return 'never';
  const ms = Date.parse(at) - Date.now();
  if (ms <= 0) return 'expired';
  return `in ${span(ms / 1000)}`;
}

const columns: Column<Token>[] = [
  col('NAME', t => t.name),
  col('ID', t => t.id),
  col('USER', t => t.userId),
  col('EXPIRES', t => expires(t.expiresAt)),
  col('AGE', t => age(t.createdAt)),
];

const fields = (t: Token): [string, unknown][] => [
  ['Name', t.name],
  ['ID', t.id],
  ['User', t.userId],
  ['Created', t.createdAt],
  ['Expires', t.expiresAt ?? 'never'],
];

/** Prints a new secret: alone on stdout in table mode, so `$(strata token create x)` captures it. */
export async function printSecret(
  created: { id: string; secret: string },
  what: string,
  format: import('./output.ts').Format,
): Promise<void> {
  if (format !== 'table') {
    out(await renderObject(created, [], format));
    return;
  }
  note(`${what} created (${created.id}). Its secret follows; it is shown only this once:`);
  out(created.secret);
}

export function tokenCommand(): Command {
  const cmd = group('token', 'manage API tokens').alias('tokens');

  cmd.addCommand(
    listOptions(leaf('list', 'list your tokens (cluster admins: --user)').alias('ls'), { labels: false })
      .option('--user <user>', "another user's tokens (cluster admins): name or id")
      .action(async (o: ListFlags & { user?: string }, c: Command) => {
        const ctx = ctxOf(c);
        const render = async () => {
          const page = await ctx.client.list<Token>('/v1/tokens', { limit: o.limit, user: o.user }, o.all ?? false);
          return (await renderList(page.items, columns, ctx.format)) + morePages(page.nextCursor, ctx.format);
        };
        if (o.watch) await watch(ctx, {}, render);
        out(await render());
      }),
  );

  cmd.addCommand(
    leaf('show', 'show a token (never its secret)')
      .argument('<id>', 'token id')
      .option('-w, --watch', 're-render on every change (Ctrl-C to stop)')
      .action(async (id: string, o: { watch?: boolean }, c: Command) => {
        const ctx = ctxOf(c);
        const render = async () => {
          const t = await ctx.client.get<Token>(`/v1/tokens/${enc(id)}`);
          return renderObject(t, fields(t), ctx.format);
        };
        if (o.watch) await watch(ctx, { resource: id }, render);
        out(await render());
      }),
  );

  cmd.addCommand(
    leaf('create', 'create a token and print its secret once')
      .argument('<name>', 'what the token is for, e.g. laptop or ci')
      .option('--user <user>', 'for another user (cluster admins): name or id')
      .option(
        '--expires-in <duration>',
        'lifetime: 3600 (seconds), 45m, 12h, 30d, 2w (default: never expires)',
        parseDuration,
      )
      .addHelpText(
        'after',
        '\nThe secret goes to standard output alone (the notice to standard error):\n  export STRATA_TOKEN=$(strata token create ci --expires-in 30d)',
      )
      .action(async (name: string, o: { user?: string; expiresIn?: number }, c: Command) => {
        const ctx = ctxOf(c);
        const t = await ctx.client.post<TokenCreated>('/v1/tokens', {
          name,
          user: o.user,
          expiresInSeconds: o.expiresIn,
        });
        await printSecret(t, `token ${t.name}`, ctx.format);
      }),
  );

  cmd.addCommand(
    leaf('delete', 'revoke a token')
      .alias('rm')
      .argument('<id>', 'token id')
      .action(async (id: string, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        await ctx.client.delete(`/v1/tokens/${enc(id)}`);
        out(`token ${id} revoked`);
      }),
  );
  return cmd;
}
