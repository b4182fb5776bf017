// `strata user ...`: users and their project roles.
import type { Command } from 'commander';
import { enc, type User } from './client.ts';
import { collect, ctxOf, group, leaf, listOptions, morePages, UsageError, type ListFlags } from './common.ts';
import { age, col, out, renderList, renderObject, type Column } from './output.ts';
import { watch } from './watch.ts';

const rolesText = (u: User) => u.projects.map(p => `${p.projectName}:${p.role}`).join(',') || '-';

const columns: Column<User>[] = [
  col('NAME', u => u.name),
  col('ID', u => u.id),
  col('ADMIN', u => (u.clusterAdmin ? 'yes' : 'no')),
  col('PROJECTS', rolesText),
  col('AGE', u => age(u.createdAt)),
];

const fields = (u: User): [string, unknown][] => [
  ['Name', u.name],
  ['ID', u.id],
  ['Cluster admin', u.clusterAdmin ? 'yes' : 'no'],
  ['Projects', rolesText(u)],
  ['Created', u.createdAt],
];

const roles = ['admin', 'member', 'reader'];

export function parseMembership(value: string): { project: string; role: 'admin' | 'member' | 'reader' } {
  const i = value.lastIndexOf(':');
  const project = value.slice(0, i);
  const role = value.slice(i + 1);
  if (i <= 0 || !roles.includes(role))
    throw new UsageError(`--member ${JSON.stringify(value)} is not PROJECT:ROLE with ROLE one of ${roles.join(', ')}`);
  return { project, role: role as 'admin' | 'member' | 'reader' };
}

export function userCommand(): Command {
  const cmd = group('user', 'manage users and their roles in projects').alias('users');

  cmd.addCommand(
    listOptions(leaf('list', 'list users (cluster admins see all, others themselves)').alias('ls'), {
      labels: false,
    }).action(async (o: ListFlags, c: Command) => {
      const ctx = ctxOf(c);
      const render = async () => {
        const page = await ctx.client.list<User>('/v1/users', { limit: o.limit }, o.all ?? false);
        return (await renderList(page.items, columns, ctx.format)) + morePages(page.nextCursor, ctx.format);
      };
      if (o.watch) await watch(ctx, {}, render);
      out(await render());
    }),
  );

  cmd.addCommand(
    leaf('show', 'show a user and their roles')
      .argument('<user>', 'user name or id')
      .option('-w, --watch', 're-render on every change (Ctrl-C to stop)')
      .action(async (ref: string, o: { watch?: boolean }, c: Command) => {
        const ctx = ctxOf(c);
        const render = async () => {
          const u = await ctx.client.get<User>(`/v1/users/${enc(ref)}`);
          return renderObject(u, fields(u), ctx.format);
        };
        if (o.watch) await watch(ctx, {}, render);
        out(await render());
      }),
  );

  cmd.addCommand(
    leaf('create', 'create a user (cluster admins); give them a token with `strata token create --user`')
      .argument('<name>', 'lower-case letters, digits and dashes')
      .option('--cluster-admin', 'may do anything in every project')
      .option('--member <project:role>', 'role in a project, e.g. web:member (repeatable)', collect)
      .addHelpText(
        'after',
        '\nExample:\n  strata user create alice --member web:admin --member ops:reader\n  strata token create alice-laptop --user alice --expires-in 90d',
      )
      .action(async (name: string, o: { clusterAdmin?: boolean; member?: string[] }, c: Command) => {
        const ctx = ctxOf(c);
        const projects = (o.member ?? []).map(parseMembership);
        const u = await ctx.client.post<User>('/v1/users', { name, clusterAdmin: o.clusterAdmin ?? false, projects });
        out(
          ctx.format === 'table'
            ? `user ${u.name} created (${u.id})${u.projects.length ? `; ${rolesText(u)}` : ''}`
            : await renderObject(u, [], ctx.format),
        );
      }),
  );

  cmd.addCommand(
    leaf('delete', 'delete a user and all their tokens (cluster admins)')
      .alias('rm')
      .argument('<user>', 'user name or id')
      .action(async (ref: string, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        await ctx.client.delete(`/v1/users/${enc(ref)}`);
        out(`user ${ref} deleted`);
      }),
  );
  return cmd;
}
