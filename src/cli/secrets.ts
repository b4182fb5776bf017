// `strata secret ...`: a project's secrets. A value is set from standard input
// (or --value) and never shown again; instances use it with
// `strata run --secret-env KEY=NAME`.
import type { Command } from 'commander';
import type { Static } from 'typebox';
import type { Secret as SecretSchema } from '../model/schemas.ts';
import { enc, type Page } from './client.ts';
import { ctxOf, group, leaf, listOptions, morePages, UsageError, type ListFlags } from './common.ts';
import { age, col, out, renderList, renderObject, type Column } from './output.ts';

type Secret = Static<typeof SecretSchema>;

const columns: Column<Secret>[] = [
  col('NAME', s => s.name),
  col('ID', s => s.id),
  col('UPDATED', s => age(s.updatedAt)),
  col('AGE', s => age(s.createdAt)),
];

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function find(ctx: ReturnType<typeof ctxOf>, name: string): Promise<Secret | undefined> {
  const page = await ctx.client.get<Page<Secret>>('/v1/secrets', { project: ctx.project, name });
  return page.items[0];
}

export function secretCommand(): Command {
  const cmd = group(
    'secret',
    "manage a project's secrets: values instances get in their environment, never shown by the API",
  ).alias('secrets');

  cmd.addCommand(
    listOptions(leaf('list', 'list the secrets of the project (names only)').alias('ls'), {
      labels: false,
      watch: false,
    }).action(async (o: ListFlags, c: Command) => {
      const ctx = ctxOf(c);
      const page = await ctx.client.list<Secret>(
        '/v1/secrets',
        { project: ctx.project, limit: o.limit },
        o.all ?? false,
      );
      out(
        (await renderList(page.items, columns, ctx.format, `No secrets in project ${ctx.project}.`)) +
          morePages(page.nextCursor, ctx.format),
      );
    }),
  );

  cmd.addCommand(
    leaf('set', 'create a secret, or replace its value; the value comes from standard input unless --value is given')
      .argument('<name>', 'secret name, unique in the project')
      .option('--value <value>', 'the value (it may end up in your shell history: prefer standard input)')
      .addHelpText(
        'after',
        '\nExamples:\n  printf %s "$DB_PASSWORD" | strata secret set db-password\n  strata run --secret-env DB_PASSWORD=db-password 127.0.0.1:5000/library/busybox -- sh -c \'test -n "$DB_PASSWORD"\'',
      )
      .action(async (name: string, o: { value?: string }, c: Command) => {
        const ctx = ctxOf(c);
        if (o.value === undefined && process.stdin.isTTY)
          throw new UsageError('give the value on standard input (or with --value)');
        const value = o.value ?? (await readStdin());
        const existing = await find(ctx, name);
        const s = existing
          ? await ctx.client.put<Secret>(`/v1/secrets/${enc(existing.id)}`, { value })
          : await ctx.client.post<Secret>('/v1/secrets', { project: ctx.project, name, value });
        out(
          ctx.format === 'table'
            ? `secret ${s.name} ${existing ? 'updated' : 'created'} (${s.id})`
            : await renderObject(s, [], ctx.format),
        );
      }),
  );

  cmd.addCommand(
    leaf('delete', 'delete a secret no instance uses')
      .alias('rm')
      .argument('<name>', 'secret name')
      .action(async (name: string, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        const s = await find(ctx, name);
        if (!s) throw new UsageError(`no secret ${JSON.stringify(name)} in project ${ctx.project}`);
        await ctx.client.delete(`/v1/secrets/${enc(s.id)}`);
        out(`secret ${name} deleted`);
      }),
  );
  return cmd;
}
