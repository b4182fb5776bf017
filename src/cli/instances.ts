// `strata instance ...` and `strata run`: containers, VMs and bare-metal
// machines, one resource. Commands that take an instance accept its id or its
// name in the current project.
import { Command, InvalidArgumentError, Option } from 'commander';
import { instanceStates } from '../model/instance-state.ts';
import { instanceKinds } from '../model/kinds.ts';
import { ApiError, enc, type Host, type Instance, type InstanceCreate, type Page, type Project } from './client.ts';
import {
  collect,
  ctxOf,
  group,
  INSTANCE_ID,
  intArg,
  keyValues,
  leaf,
  listOptions,
  morePages,
  parseConstraint,
  parseMemory,
  type Ctx,
  type ListFlags,
} from './common.ts';
import { age, col, labelsText, mib, out, renderList, renderObject, shellQuote, type Column } from './output.ts';
import { watch } from './watch.ts';

/** The id of an instance given by id, or by name in the current project. */
export async function resolveInstance(ctx: Ctx, ref: string): Promise<string> {
  if (INSTANCE_ID.test(ref)) return ref;
  return (await findByName(ctx, ref)).id;
}

async function findByName(ctx: Ctx, name: string): Promise<Instance> {
  const page = await ctx.client.get<Page<Instance>>('/v1/instances', { project: ctx.project, name, limit: 1 });
  const found = page.items[0];
  if (!found) throw new ApiError(404, 'not_found', `instance ${JSON.stringify(name)} not found in project ${ctx.project}`);
  return found;
}

async function getInstance(ctx: Ctx, ref: string): Promise<Instance> {
  return INSTANCE_ID.test(ref) ? ctx.client.get<Instance>(`/v1/instances/${enc(ref)}`) : findByName(ctx, ref);
}

/** id -> name for the hosts (or projects) the items refer to; ids stay when a lookup fails. */
async function namesOf<T extends { id: string; name: string }>(ctx: Ctx, path: string, wanted: Set<string>): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  if (wanted.size === 0) return names;
  try {
    const all = await ctx.client.list<T>(path, { limit: 1000 }, true);
    for (const x of all.items) names.set(x.id, x.name);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
  }
  return names;
}

const commandText = (i: Instance) => [...i.command, ...i.args].map(shellQuote).join(' ');
function parseRestart(v: string): NonNullable<InstanceCreate['restartPolicy']> {
  const m = /^(never|always|on-failure)(?::(\d+))?$/.exec(v);
  if (!m || (m[2] !== undefined && m[1] !== 'on-failure')) {
    throw new InvalidArgumentError('use never, always, on-failure or on-failure:N');
  }
  const policy = m[1] as 'never' | 'always' | 'on-failure';
  return m[2] === undefined ? { policy } : { policy, maxRetries: Number(m[2]) };
}

const stateText = (i: Instance) => (i.desiredState !== 'running' && i.desiredState !== i.state ? `${i.state} (→${i.desiredState})` : i.state);

function columns(hosts: Map<string, string>, projects?: Map<string, string>): Column<Instance>[] {
  const cols: Column<Instance>[] = [
    col('NAME', (i) => i.name),
    col('ID', (i) => i.id),
    col('KIND', (i) => i.kind),
    col('IMAGE', (i) => i.image),
    col('STATE', stateText),
    col('HOST', (i) => (i.host ? (hosts.get(i.host) ?? i.host) : '-')),
    col('AGE', (i) => age(i.createdAt)),
  ];
  if (projects) cols.unshift(col('PROJECT', (i) => projects.get(i.project) ?? i.project));
  return cols;
}

async function fields(ctx: Ctx, i: Instance): Promise<[string, unknown][]> {
  const hosts = await namesOf<Host>(ctx, '/v1/hosts', new Set(i.host ? [i.host] : []));
  return [
    ['Name', i.name],
    ['ID', i.id],
    ['Project', i.project],
    ['Kind', i.kind],
    ['Image', i.image],
    ['Command', commandText(i)],
    ['Env', Object.entries(i.env).map(([k, v]) => `${k}=${shellQuote(v)}`).join(' ')],
    ['Labels', labelsText(i.labels)],
    ['Resources', `${i.resources.vcpus} vCPU, ${mib(i.resources.memoryMib)} memory, ${i.resources.diskGib}Gi disk`],
    ['Constraints', i.constraints.map((c) => (c.op === 'exists' ? c.key : c.op === 'not-exists' ? `!${c.key}` : `${c.key}${c.op}${c.value ?? ''}`)).join(' ')],
    ['Host', i.host ? `${hosts.get(i.host) ?? i.host}${hosts.has(i.host) ? ` (${i.host})` : ''}` : '-'],
    ['State', i.state],
    ['Desired', i.desiredState],
    ['Restart', `${i.restartPolicy.policy}${i.restartPolicy.maxRetries !== undefined ? `:${i.restartPolicy.maxRetries}` : ''} (${i.restarts} so far)`],
    ['Message', i.message],
    ['Exit code', i.exitCode],
    ['Created', i.createdAt],
    ['Started', i.startedAt],
    ['Finished', i.finishedAt],
  ];
}

interface CreateFlags {
  kind: InstanceCreate['kind'];
  name?: string;
  env?: string[];
  label?: string[];
  cpus?: number;
  disk?: number;
  constraint?: InstanceCreate['constraints'];
  stopped?: boolean;
  restart?: InstanceCreate['restartPolicy'];
}

function createCommand(name: string, description: string): Command {
  return leaf(name, description)
    .argument('<image>', 'image reference, e.g. docker.io/library/nginx:1.27')
    .argument('[command...]', 'command and arguments, after -- (default: the image\'s)')
    .addOption(new Option('-k, --kind <kind>', 'container, vm or metal').choices(instanceKinds).default('container'))
    .option('--name <name>', 'instance name, unique in the project (default: generated)')
    .option('-e, --env <key=value>', 'environment variable (repeatable)', collect)
    .option('--label <key=value>', 'label (repeatable)', collect)
    .option('--cpus <n>', 'vCPUs', intArg(1))
    .option('-m, --memory <size>', 'memory: 512 (MiB), 512Mi, 2Gi', parseMemory)
    .option('--disk <gib>', 'disk in GiB', intArg())
    .option('-c, --constraint <expr>', 'placement rule on host labels or topology.zone/rack/region: key==v, key!=v, key, !key (repeatable)', (v: string, prev: InstanceCreate['constraints']) => [...(prev ?? []), parseConstraint(v)])
    .option('--stopped', 'create it without starting it')
    .option('--restart <policy>', 'after an exit: never (default), on-failure[:MAX_RETRIES] or always; backoff doubles from 1 s', parseRestart)
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  strata run nginx:1.27 --name web --label app=web -e MODE=prod\n' +
        '  strata run --kind vm ubuntu:24.04 --cpus 2 --memory 2Gi --disk 20 -c topology.zone==a\n' +
        '  strata run busybox -- sh -c "echo hello; sleep 3600"',
    )
    .action(async (image: string, command: string[], o: CreateFlags & { memory?: number }, c: Command) => {
      const ctx = ctxOf(c);
      const resources: NonNullable<InstanceCreate['resources']> = {};
      if (o.cpus !== undefined) resources.vcpus = o.cpus;
      if (o.memory !== undefined) resources.memoryMib = o.memory;
      if (o.disk !== undefined) resources.diskGib = o.disk;
      const body: InstanceCreate = {
        project: ctx.project,
        kind: o.kind,
        image,
      };
      if (o.name !== undefined) body.name = o.name;
      if (command.length > 0) body.command = command;
      const env = keyValues(o.env, '--env');
      if (env) body.env = env;
      const labels = keyValues(o.label, '--label');
      if (labels) body.labels = labels;
      if (Object.keys(resources).length > 0) body.resources = resources;
      if (o.constraint) body.constraints = o.constraint;
      if (o.stopped) body.desiredState = 'stopped';
      if (o.restart) body.restartPolicy = o.restart;
      const i = await ctx.client.post<Instance>('/v1/instances', body);
      out(ctx.format === 'table' ? `instance ${i.name} created (${i.id}) in project ${ctx.project}: ${i.state}` : await renderObject(i, [], ctx.format));
    });
}

export function runCommand(): Command {
  return createCommand('run', 'create and start an instance (alias of `instance create`)');
}

export function instanceCommand(): Command {
  const cmd = group('instance', 'manage instances: containers, VMs and bare-metal machines').alias('instances');

  cmd.addCommand(
    listOptions(leaf('list', 'list the instances of the project').alias('ls'))
      .addOption(new Option('--state <state>', 'only instances in this state').choices(instanceStates))
      .option('--host <host>', 'only instances on this host (name or id)')
      .option('-A, --all-projects', 'instances of every project you can see')
      .action(async (o: ListFlags & { state?: string; host?: string; allProjects?: boolean }, c: Command) => {
        const ctx = ctxOf(c);
        const query = { project: o.allProjects ? undefined : ctx.project, labels: o.labels, state: o.state, host: o.host, limit: o.limit };
        const render = async () => {
          const page = await ctx.client.list<Instance>('/v1/instances', query, o.all ?? false);
          if (ctx.format !== 'table') return renderList(page.items, [], ctx.format);
          const hosts = await namesOf<Host>(ctx, '/v1/hosts', new Set(page.items.flatMap((i) => (i.host ? [i.host] : []))));
          const projects = o.allProjects ? await namesOf<Project>(ctx, '/v1/projects', new Set(page.items.map((i) => i.project))) : undefined;
          return (await renderList(page.items, columns(hosts, projects), ctx.format, o.allProjects ? 'No instances.' : `No instances in project ${ctx.project}.`)) + morePages(page.nextCursor, ctx.format);
        };
        if (o.watch) await watch(ctx, { project: query.project }, render);
        out(await render());
      }),
  );

  cmd.addCommand(
    leaf('show', 'show an instance: spec, placement and state')
      .argument('<instance>', 'instance name (in the current project) or id')
      .option('-w, --watch', 're-render on every change of the instance (Ctrl-C to stop)')
      .action(async (ref: string, o: { watch?: boolean }, c: Command) => {
        const ctx = ctxOf(c);
        const first = await getInstance(ctx, ref);
        const render = async (i?: Instance) => {
          i ??= await ctx.client.get<Instance>(`/v1/instances/${enc(first.id)}`);
          return renderObject(i, ctx.format === 'table' ? await fields(ctx, i) : [], ctx.format);
        };
        if (o.watch) await watch(ctx, { resource: first.id }, () => render());
        out(await render(first));
      }),
  );

  cmd.addCommand(createCommand('create', 'create an instance; it is placed and started at once unless --stopped'));

  cmd.addCommand(
    leaf('delete', 'delete instances (their hosts tear them down)')
      .alias('rm')
      .argument('<instance...>', 'instance names (in the current project) or ids')
      .action(async (refs: string[], _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        for (const ref of refs) {
          const id = await resolveInstance(ctx, ref);
          const i = await ctx.client.delete<Instance | null>(`/v1/instances/${enc(id)}`);
          if (ctx.format !== 'table') out(await renderObject(i ?? { id, state: 'deleted' }, [], ctx.format));
          else out(i ? `instance ${i.name} (${id}) is ${i.state}` : `instance ${ref} (${id}) deleted`);
        }
      }),
  );

  for (const [verb, description] of [
    ['start', 'ask for instances to be running'],
    ['stop', 'ask for instances to be stopped'],
  ] as const) {
    cmd.addCommand(
      leaf(verb, description)
        .argument('<instance...>', 'instance names (in the current project) or ids')
        .action(async (refs: string[], _o: unknown, c: Command) => {
          const ctx = ctxOf(c);
          for (const ref of refs) {
            const id = await resolveInstance(ctx, ref);
            const i = await ctx.client.post<Instance>(`/v1/instances/${enc(id)}/${verb}`);
            out(ctx.format === 'table' ? `instance ${i.name} (${i.id}): desired ${i.desiredState}, now ${i.state}` : await renderObject(i, [], ctx.format));
          }
        }),
    );
  }
  return cmd;
}
