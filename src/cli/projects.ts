// `strata project ...`: projects, their quotas and members.
import { type Command, Option } from 'commander';
import { enc, type Member, type Project } from './client.ts';
import {
  collect,
  ctxOf,
  group,
  intArg,
  keyValues,
  leaf,
  listOptions,
  morePages,
  parseMemory,
  quotaArg,
  UsageError,
  type ListFlags,
} from './common.ts';
import { age, col, labelsText, mib, out, renderList, renderObject, type Column } from './output.ts';
import { watch } from './watch.ts';

const limitText = (used: number, limit: number | null, fmt: (n: number) => string = String) =>
  `${fmt(used)}/${limit === null ? '∞' : fmt(limit)}`;

const columns: Column<Project>[] = [
  col('NAME', p => p.name),
  col('ID', p => p.id),
  col('INSTANCES', p => limitText(p.usage.instances, p.quota.instances)),
  col('VCPUS', p => limitText(p.usage.vcpus, p.quota.vcpus)),
  col('MEMORY', p => limitText(p.usage.memoryMib, p.quota.memoryMib, mib)),
  col('LABELS', p => labelsText(p.labels)),
  col('AGE', p => age(p.createdAt)),
];

export function projectFields(p: Project): [string, unknown][] {
  return [
    ['Name', p.name],
    ['ID', p.id],
    ['Description', p.description],
    ['Labels', labelsText(p.labels)],
    ['Instances', limitText(p.usage.instances, p.quota.instances)],
    ['vCPUs', limitText(p.usage.vcpus, p.quota.vcpus)],
    ['Memory', limitText(p.usage.memoryMib, p.quota.memoryMib, mib)],
    ['Disk', limitText(p.usage.diskGib, p.quota.diskGib, n => `${n}Gi`)],
    ['Created', p.createdAt],
    ['Updated', p.updatedAt],
  ];
}

const roleOption = () =>
  new Option('--role <role>', 'role in the project').choices(['admin', 'member', 'reader']).makeOptionMandatory();

export function projectCommand(): Command {
  const cmd = group('project', 'manage projects: the owners of instances, with quotas and members').alias('projects');

  cmd.addCommand(
    listOptions(leaf('list', 'list the projects you can see').alias('ls')).action(async (o: ListFlags, c: Command) => {
      const ctx = ctxOf(c);
      const render = async () => {
        const page = await ctx.client.list<Project>(
          '/v1/projects',
          { limit: o.limit, labels: o.labels },
          o.all ?? false,
        );
        return (await renderList(page.items, columns, ctx.format)) + morePages(page.nextCursor, ctx.format);
      };
      if (o.watch) await watch(ctx, {}, render);
      out(await render());
    }),
  );

  cmd.addCommand(
    leaf('show', 'show a project, its quota and usage')
      .argument('[project]', 'project name or id (default: the current project)')
      .option('-w, --watch', 're-render on every change in the project (Ctrl-C to stop)')
      .action(async (ref: string | undefined, o: { watch?: boolean }, c: Command) => {
        const ctx = ctxOf(c);
        const name = ref ?? ctx.project;
        const render = async () => {
          const p = await ctx.client.get<Project>(`/v1/projects/${enc(name)}`);
          return renderObject(p, projectFields(p), ctx.format);
        };
        if (o.watch) await watch(ctx, { project: name }, render);
        out(await render());
      }),
  );

  cmd.addCommand(
    leaf('create', 'create a project (cluster admins)')
      .argument('<name>', 'lower-case letters, digits and dashes')
      .option('-d, --description <text>', 'description')
      .option('--label <key=value>', 'label (repeatable)', collect)
      .action(async (name: string, o: { description?: string; label?: string[] }, c: Command) => {
        const ctx = ctxOf(c);
        const p = await ctx.client.post<Project>('/v1/projects', {
          name,
          description: o.description,
          labels: keyValues(o.label, 'label'),
        });
        out(ctx.format === 'table' ? `project ${p.name} created (${p.id})` : await renderObject(p, [], ctx.format));
      }),
  );

  cmd.addCommand(
    leaf('delete', 'delete a project that holds no instances (cluster admins)')
      .alias('rm')
      .argument('<project>', 'project name or id')
      .action(async (ref: string, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        await ctx.client.delete(`/v1/projects/${enc(ref)}`);
        out(`project ${ref} deleted`);
      }),
  );

  cmd.addCommand(
    leaf('set-quota', 'set or clear quota limits (cluster admins); "unlimited" or "none" clears one')
      .argument('<project>', 'project name or id')
      .option('--instances <n>', 'most instances', quotaArg(intArg()))
      .option('--vcpus <n>', 'most vCPUs in total', quotaArg(intArg()))
      .option('--memory-mib <size>', 'most memory in total, in MiB (or 8Gi)', quotaArg(parseMemory))
      .option('--disk-gib <n>', 'most disk in total, in GiB', quotaArg(intArg()))
      .addHelpText(
        'after',
        '\nExample:\n  strata project set-quota team-a --instances 20 --vcpus 40 --memory-mib 64Gi --disk-gib unlimited',
      )
      .action(
        async (
          ref: string,
          o: Record<'instances' | 'vcpus' | 'memoryMib' | 'diskGib', number | 'unlimited' | undefined>,
          c: Command,
        ) => {
          const ctx = ctxOf(c);
          const v = (x: number | 'unlimited' | undefined) => (x === 'unlimited' ? null : x);
          const quota = {
            instances: v(o.instances),
            vcpus: v(o.vcpus),
            memoryMib: v(o.memoryMib),
            diskGib: v(o.diskGib),
          };
          if (Object.values(quota).every(v => v === undefined))
            throw new UsageError('give at least one of --instances, --vcpus, --memory-mib, --disk-gib');
          const p = await ctx.client.patch<Project>(`/v1/projects/${enc(ref)}`, { quota });
          out(await renderObject(p, projectFields(p), ctx.format));
        },
      ),
  );

  cmd.addCommand(
    leaf('members', 'list the members of a project and their roles')
      .argument('[project]', 'project name or id (default: the current project)')
      .action(async (ref: string | undefined, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        const res = await ctx.client.get<{ items: Member[] }>(`/v1/projects/${enc(ref ?? ctx.project)}/members`);
        out(
          await renderList(
            res.items,
            [
              col('USER', m => m.userName),
              col('ROLE', m => m.role),
              col('USER ID', m => m.userId),
              col('SINCE', m => age(m.createdAt)),
            ],
            ctx.format,
            'No members.',
          ),
        );
      }),
  );

  cmd.addCommand(
    leaf('add-member', 'give a user a role in a project (or change it) (project admins)')
      .argument('<project>', 'project name or id')
      .argument('<user>', 'user name or id')
      .addOption(roleOption())
      .action(async (ref: string, user: string, o: { role: string }, c: Command) => {
        const ctx = ctxOf(c);
        const m = await ctx.client.put<Member>(`/v1/projects/${enc(ref)}/members/${enc(user)}`, { role: o.role });
        out(
          ctx.format === 'table'
            ? `${m.userName} is now ${m.role} of project ${ref}`
            : await renderObject(m, [], ctx.format),
        );
      }),
  );

  cmd.addCommand(
    leaf('remove-member', 'remove a user from a project (project admins)')
      .argument('<project>', 'project name or id')
      .argument('<user>', 'user name or id')
      .action(async (ref: string, user: string, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        await ctx.client.delete(`/v1/projects/${enc(ref)}/members/${enc(user)}`);
        out(`${user} removed from project ${ref}`);
      }),
  );
  return cmd;
}
