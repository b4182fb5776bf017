// `strata instance ...` and `strata run`: containers, VMs and bare-metal
// machines, one resource. Commands that take an instance accept its id or its
// name in the current project.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type CliFlag, findKind, kindNames, kinds } from '../kinds/index.ts';
import { instanceStates } from '../model/instance-state.ts';
import { PRIORITY_MAX, PRIORITY_MIN } from '../model/priority.ts';
import {
  ApiError,
  enc,
  withQuery,
  type Host,
  type Instance,
  type InstanceCreate,
  type Page,
  type Project,
} from './client.ts';
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
  parseDuration,
  parseMemory,
  UsageError,
  type Ctx,
  type ListFlags,
} from './common.ts';
import { age, col, labelsText, mib, out, renderList, renderObject, shellQuote, type Column } from './output.ts';
import { explainCommand } from './groups.ts';
import { watch } from './watch.ts';

/** The id of an instance given by id, or by name in the current project. */
export async function resolveInstance(ctx: Ctx, ref: string): Promise<string> {
  if (INSTANCE_ID.test(ref)) return ref;
  return (await findByName(ctx, ref)).id;
}

async function findByName(ctx: Ctx, name: string): Promise<Instance> {
  const page = await ctx.client.get<Page<Instance>>('/v1/instances', { project: ctx.project, name, limit: 1 });
  const found = page.items[0];
  if (!found)
    throw new ApiError(404, 'not_found', `instance ${JSON.stringify(name)} not found in project ${ctx.project}`);
  return found;
}

async function getInstance(ctx: Ctx, ref: string): Promise<Instance> {
  return INSTANCE_ID.test(ref) ? ctx.client.get<Instance>(`/v1/instances/${enc(ref)}`) : findByName(ctx, ref);
}

/** id -> name for the hosts (or projects) the items refer to; ids stay when a lookup fails. */
async function namesOf<T extends { id: string; name: string }>(
  ctx: Ctx,
  path: string,
  wanted: Set<string>,
): Promise<Map<string, string>> {
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

function healthCheckText(i: Instance): string {
  const h = i.healthCheck;
  if (!h) return '-';
  const what =
    h.type === 'exec'
      ? `exec ${(h.command ?? []).map(shellQuote).join(' ')}`
      : h.type === 'http'
        ? `http GET :${h.port}${h.path ?? '/'}`
        : `tcp :${h.port}`;
  return `${what} every ${h.intervalSeconds}s, timeout ${h.timeoutSeconds}s, ${h.retries} retries, start period ${h.startPeriodSeconds}s`;
}

const stateText = (i: Instance) => {
  if (i.desiredState !== 'running' && i.desiredState !== i.state) return `${i.state} (→${i.desiredState})`;
  return i.state === 'running' && i.observed.health ? `running (${i.observed.health.status})` : i.state;
};

/** `pending`: instances waiting for a host, so the list says each one's priority and why it waits. */
function columns(hosts: Map<string, string>, projects?: Map<string, string>, pending = false): Column<Instance>[] {
  const cols: Column<Instance>[] = pending
    ? [
        col('NAME', i => i.name),
        col('ID', i => i.id),
        col('KIND', i => i.kind),
        col('PRIORITY', i => i.priority),
        col('AGE', i => age(i.createdAt)),
        col('MESSAGE', i => i.message || '-'),
      ]
    : [
        col('NAME', i => i.name),
        col('ID', i => i.id),
        col('KIND', i => i.kind),
        col('IMAGE', i => i.image),
        col('STATE', stateText),
        col('HOST', i => (i.host ? (hosts.get(i.host) ?? i.host) : '-')),
        col('AGE', i => age(i.createdAt)),
      ];
  if (projects) cols.unshift(col('PROJECT', i => projects.get(i.project) ?? i.project));
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
    [
      'Env',
      Object.entries(i.env)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? shellQuote(v) : `(secret ${v.secret})`}`)
        .join(' '),
    ],
    ['Labels', labelsText(i.labels)],
    ['Stop grace', `${i.stopGraceSeconds}s`],
    [
      'Resources',
      `${i.resources.vcpus} vCPU, ${mib(i.resources.memoryMib)} memory, ${i.resources.diskGib}Gi disk, ${i.pidsLimit} pids`,
    ],
    ['Working dir', i.workingDir || '(image default)'],
    ['Address', i.observed.address ?? '-'],
    ...(findKind(i.kind)?.show(i) ?? []),
    ['Health check', healthCheckText(i)],
    [
      'Health',
      i.observed.health
        ? `${i.observed.health.status}${i.observed.health.failingStreak ? ` (${i.observed.health.failingStreak} failing)` : ''}${i.observed.health.output ? `: ${i.observed.health.output}` : ''}`
        : '-',
    ],
    [
      'Constraints',
      i.constraints
        .map(c => (c.op === 'exists' ? c.key : c.op === 'not-exists' ? `!${c.key}` : `${c.key}${c.op}${c.value ?? ''}`))
        .join(' '),
    ],
    ['Priority', `${i.priority}${i.waitForCapacity ? '' : ' (fails at once when no host can take it)'}`],
    ['Host', i.host ? `${hosts.get(i.host) ?? i.host}${hosts.has(i.host) ? ` (${i.host})` : ''}` : '-'],
    ['State', i.state],
    ['Desired', i.desiredState],
    [
      'Restart',
      `${i.restartPolicy.policy}${i.restartPolicy.maxRetries !== undefined ? `:${i.restartPolicy.maxRetries}` : ''} (${i.restarts} so far)`,
    ],
    ['Message', i.message],
    ['Exit code', i.exitCode],
    ['Created', i.createdAt],
    ['Started', i.startedAt],
    ['Finished', i.finishedAt],
  ];
}

function priorityArg(v: string): number {
  if (!/^[-+]?\d+$/.test(v.trim())) throw new InvalidArgumentError('expected a whole number.');
  const n = Number(v);
  if (n < PRIORITY_MIN || n > PRIORITY_MAX)
    throw new InvalidArgumentError(`expected ${PRIORITY_MIN} to ${PRIORITY_MAX}.`);
  return n;
}

const seconds = (v: string) => {
  const n = parseDuration(v);
  if (n < 1) throw new InvalidArgumentError('expected at least 1 s.');
  return n;
};

interface HealthFlags {
  healthCmd?: string;
  healthHttp?: string;
  healthTcp?: number;
  healthInterval?: number;
  healthTimeout?: number;
  healthRetries?: number;
  healthStartPeriod?: number;
}

function healthCheckOf(o: HealthFlags): InstanceCreate['healthCheck'] {
  const kinds = [o.healthCmd, o.healthHttp, o.healthTcp].filter(x => x !== undefined).length;
  if (kinds === 0) {
    if (o.healthInterval ?? o.healthTimeout ?? o.healthRetries ?? o.healthStartPeriod)
      throw new UsageError('--health-interval and friends need --health-cmd, --health-http or --health-tcp');
    return undefined;
  }
  if (kinds > 1) throw new UsageError('give one of --health-cmd, --health-http, --health-tcp');
  const timing = {
    ...(o.healthInterval !== undefined ? { intervalSeconds: o.healthInterval } : {}),
    ...(o.healthTimeout !== undefined ? { timeoutSeconds: o.healthTimeout } : {}),
    ...(o.healthRetries !== undefined ? { retries: o.healthRetries } : {}),
    ...(o.healthStartPeriod !== undefined ? { startPeriodSeconds: o.healthStartPeriod } : {}),
  };
  if (o.healthCmd !== undefined) return { type: 'exec', command: ['sh', '-c', o.healthCmd], ...timing };
  if (o.healthTcp !== undefined) return { type: 'tcp', port: o.healthTcp, ...timing };
  const m = /^(\d+)(\/.*)?$/.exec(o.healthHttp ?? '');
  if (!m?.[1]) throw new UsageError('--health-http wants PORT[/PATH], e.g. 8080/healthz');
  return { type: 'http', port: Number(m[1]), ...(m[2] ? { path: m[2] } : {}), ...timing };
}

interface CreateFlags extends HealthFlags {
  kind: InstanceCreate['kind'];
  name?: string;
  env?: string[];
  secretEnv?: string[];
  label?: string[];
  cpus?: number;
  disk?: number;
  constraint?: InstanceCreate['constraints'];
  stopped?: boolean;
  restart?: InstanceCreate['restartPolicy'];
  workdir?: string;
  pids?: number;
  stopGrace?: number;
  group?: string[];
  priority?: number;
  waitForCapacity?: boolean;
  wait?: boolean;
}

/**
 * Follows an instance's events until it runs (or ends, or fails), printing each
 * step to stderr: placement, image pull progress, start. Fails the command when
 * the instance fails.
 */
async function waitForStart(ctx: Ctx, i: Instance): Promise<Instance> {
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  let outcome: { state: string; message: string } | undefined;
  const say = (s: string) => process.stderr.write(`${s}\n`);
  await ctx.client.follow(
    { resource: i.id, since: 0 },
    {
      onEvent: e => {
        const d = e.data as {
          to?: string;
          message?: string;
          hostId?: string;
          reason?: string;
          waiting?: boolean;
          victims?: string[];
          otherProjects?: number;
        };
        if (e.type === 'instance.scheduled') say(`placed on host ${d.hostId ?? ''}`);
        if (e.type === 'instance.preempting') {
          const n = (d.victims?.length ?? 0) + (d.otherProjects ?? 0);
          say(`no room: preempting ${n} instance${n === 1 ? '' : 's'} of lower priority on host ${d.hostId ?? ''}`);
        }
        if (e.type === 'instance.unplaced')
          say(`${d.waiting ? 'waiting for capacity' : 'not placed'}: ${d.reason ?? ''}`);
        if (e.type !== 'instance.state' || !d.to) return;
        say(d.message ? `${d.to}: ${d.message}` : d.to);
        if (['running', 'stopped', 'failed'].includes(d.to)) {
          outcome = { state: d.to, message: d.message ?? '' };
          abort.abort();
        }
      },
    },
    abort.signal,
  );
  const now = await ctx.client.get<Instance>(`/v1/instances/${enc(i.id)}`);
  if (outcome?.state === 'failed' || now.state === 'failed')
    throw new Error(`instance ${i.name} failed: ${now.message || outcome?.message || 'no reason given'}`);
  return now;
}

/** Each kind's flags, once each (two kinds may share one), saying which kinds take them. */
function addKindFlags(cmd: Command): Command {
  const owners = new Map<string, { flag: CliFlag; kinds: string[] }>();
  for (const k of kinds)
    for (const flag of k.cli.flags) {
      const seen = owners.get(flag.flags);
      if (seen) seen.kinds.push(k.plural);
      else owners.set(flag.flags, { flag, kinds: [k.plural] });
    }
  for (const { flag: f, kinds: whose } of owners.values()) {
    const option = new Option(f.flags, `${whose.join(', ')}: ${f.description}`);
    if (f.choices) option.choices(f.choices);
    if (f.parse) option.argParser(kindFlagParser(f.parse));
    cmd.addOption(option);
  }
  return cmd;
}

/** A kind's parser, its complaint reported as commander reports a bad value. */
const kindFlagParser =
  (parse: NonNullable<CliFlag['parse']>) =>
  (value: string, previous: unknown): unknown => {
    try {
      return parse(value, previous);
    } catch (err) {
      throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
    }
  };

function createCommand(name: string, description: string): Command {
  const cmd = leaf(name, description)
    .argument('<image>', 'image reference, e.g. docker.io/library/nginx:1.27')
    .argument('[command...]', "command and arguments, after -- (default: the image's)")
    .addOption(new Option('-k, --kind <kind>', 'kind of instance').choices(kindNames).default(kindNames[0]))
    .option('--name <name>', 'instance name, unique in the project (default: generated)')
    .option('-e, --env <key=value>', 'environment variable (repeatable)', collect)
    .option(
      '--secret-env <key=secret>',
      'environment variable whose value is a secret of the project, given to the instance only (repeatable; see strata secret)',
      collect,
    )
    .option('--label <key=value>', 'label (repeatable)', collect)
    .option('--cpus <n>', 'vCPUs', intArg(1))
    .option('-m, --memory <size>', 'memory: 512 (MiB), 512Mi, 2Gi', parseMemory)
    .option('--disk <gib>', 'disk in GiB', intArg())
    .option(
      '-c, --constraint <expr>',
      'placement rule on host labels or topology.zone/rack/region: key==v, key!=v, key, !key (repeatable)',
      (v: string, prev: InstanceCreate['constraints']) => [...(prev ?? []), parseConstraint(v)],
    )
    .option('--stopped', 'create it without starting it')
    .option(
      '--restart <policy>',
      'after an exit: never (default), on-failure[:MAX_RETRIES] or always; backoff doubles from 1 s',
      parseRestart,
    )
    .option('-w, --workdir <dir>', "working directory inside the instance (default: the image's)")
    .option('--pids <n>', 'most processes at once (default 4096)', intArg(8))
    .option('--stop-grace <duration>', 'on stop: time between SIGTERM and SIGKILL (default 10s)', parseDuration)
    .option('--health-cmd <command>', 'health check: healthy when this shell command exits 0')
    .option('--health-http <port[/path]>', 'health check: healthy when GET answers 2xx or 3xx')
    .option('--health-tcp <port>', 'health check: healthy when the port accepts a connection', intArg(1))
    .option('--health-interval <duration>', 'time between checks (default 10s)', seconds)
    .option('--health-timeout <duration>', 'time a check may take (default 5s)', seconds)
    .option('--health-retries <n>', 'failures in a row that make it unhealthy (default 3)', intArg(1))
    .option(
      '--health-start-period <duration>',
      'failures in this time after start do not count (default 0)',
      parseDuration,
    )
    .option('-g, --group <group>', 'join a placement group (name or id; repeatable)', collect)
    .option(
      '--priority <n>',
      `placement order while instances wait for capacity: higher first, then older first (${PRIORITY_MIN}..${PRIORITY_MAX}, default 0)`,
      priorityArg,
    )
    .option(
      '--no-wait-for-capacity',
      'fail at once when no host can take it, instead of waiting in pending until one can',
    );
  return addKindFlags(cmd)
    .option('--wait', 'follow placement, image pull and start, and return once it runs (or fail if it fails)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  strata run nginx:1.27 --name web --label app=web -e MODE=prod --publish 8080:80 --health-http 80/\n' +
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
      const env: NonNullable<InstanceCreate['env']> = { ...keyValues(o.env, '--env') };
      for (const [k, secret] of Object.entries(keyValues(o.secretEnv, '--secret-env') ?? {})) env[k] = { secret };
      if (Object.keys(env).length > 0) body.env = env;
      const labels = keyValues(o.label, '--label');
      if (labels) body.labels = labels;
      if (Object.keys(resources).length > 0) body.resources = resources;
      if (o.constraint) body.constraints = o.constraint;
      if (o.stopped) body.desiredState = 'stopped';
      if (o.restart) body.restartPolicy = o.restart;
      if (o.workdir !== undefined) body.workingDir = o.workdir;
      if (o.pids !== undefined) body.pidsLimit = o.pids;
      if (o.stopGrace !== undefined) body.stopGraceSeconds = o.stopGrace;
      if (o.group) body.groups = o.group;
      if (o.priority !== undefined) body.priority = o.priority;
      if (o.waitForCapacity === false) body.waitForCapacity = false;
      // Every kind's flags that were given, the chosen kind's last: a flag of
      // another kind reaches the server, which says whose it is.
      const chosen = findKind(o.kind);
      for (const k of [...kinds.filter(k => k !== chosen), ...(chosen ? [chosen] : [])])
        Object.assign(body, k.cli.spec(o as unknown as Record<string, unknown>));
      const healthCheck = healthCheckOf(o);
      if (healthCheck) body.healthCheck = healthCheck;
      let i = await ctx.client.post<Instance>('/v1/instances', body);
      if (o.wait && !o.stopped) i = await waitForStart(ctx, i);
      out(
        ctx.format === 'table'
          ? `instance ${i.name} created (${i.id}) in project ${ctx.project}: ${i.state}`
          : await renderObject(i, [], ctx.format),
      );
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
        const query = {
          project: o.allProjects ? undefined : ctx.project,
          labels: o.labels,
          state: o.state,
          host: o.host,
          limit: o.limit,
        };
        const render = async () => {
          const page = await ctx.client.list<Instance>('/v1/instances', query, o.all ?? false);
          if (ctx.format !== 'table') return renderList(page.items, [], ctx.format);
          const hosts = await namesOf<Host>(
            ctx,
            '/v1/hosts',
            new Set(page.items.flatMap(i => (i.host ? [i.host] : []))),
          );
          const projects = o.allProjects
            ? await namesOf<Project>(ctx, '/v1/projects', new Set(page.items.map(i => i.project)))
            : undefined;
          return (
            (await renderList(
              page.items,
              columns(hosts, projects, o.state === 'pending'),
              ctx.format,
              o.allProjects ? 'No instances.' : `No instances in project ${ctx.project}.`,
            )) + morePages(page.nextCursor, ctx.format)
          );
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

  cmd.addCommand(explainCommand(resolveInstance));

  cmd.addCommand(createCommand('create', 'create an instance; it is placed and started at once unless --stopped'));

  cmd.addCommand(
    leaf('delete', 'delete instances (their hosts tear them down)')
      .alias('rm')
      .argument('<instance...>', 'instance names (in the current project) or ids')
      .option(
        '--force',
        "forget them at once, without their host's word: for instances on a host that is down (lost) or gone; should the host come back, its agent removes them",
      )
      .action(async (refs: string[], o: { force?: boolean }, c: Command) => {
        const ctx = ctxOf(c);
        for (const ref of refs) {
          const id = await resolveInstance(ctx, ref);
          const i = await ctx.client.delete<Instance | null>(`/v1/instances/${enc(id)}${o.force ? '?force=true' : ''}`);
          if (ctx.format !== 'table') out(await renderObject(i ?? { id, state: 'deleted' }, [], ctx.format));
          else out(i ? `instance ${i.name} (${id}) is ${i.state}` : `instance ${ref} (${id}) deleted`);
        }
      }),
  );

  for (const [verb, description] of [
    ['start', 'ask for instances to be running'],
    ['stop', 'ask for instances to be stopped (a polite signal, then a kill after the stop grace period)'],
    ['restart', 'stop running instances and start them again (starts stopped ones); VMs reboot in place'],
    ['pause', 'freeze running instances in place (their processes, or their whole VM)'],
    ['resume', 'thaw paused instances'],
  ] as const) {
    const c = leaf(verb, description).argument('<instance...>', 'instance names (in the current project) or ids');
    if (verb === 'stop') {
      c.option('--force', 'a hard stop: no grace period (a VM is switched off)').option(
        '--grace <duration>',
        "this stop's grace period instead of the instance's",
        parseDuration,
      );
    }
    cmd.addCommand(
      c.action(async (refs: string[], o: { force?: boolean; grace?: number }, cc: Command) => {
        const ctx = ctxOf(cc);
        const query = withQuery('', { force: o.force, graceSeconds: o.grace });
        for (const ref of refs) {
          const id = await resolveInstance(ctx, ref);
          const i = await ctx.client.post<Instance>(`/v1/instances/${enc(id)}/${verb}${query}`);
          out(
            ctx.format === 'table'
              ? `instance ${i.name} (${i.id}): desired ${i.desiredState}, now ${i.state}`
              : await renderObject(i, [], ctx.format),
          );
        }
      }),
    );
  }
  return cmd;
}
