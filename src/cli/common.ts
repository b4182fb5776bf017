// What every CLI command shares: the global options (-o, -p, --context), the
// resolved target (server, token, project) and client, argument parsers, and
// the errors that end a command with a message instead of a stack trace.
import { Command, InvalidArgumentError, Option } from 'commander';
import { Client, type Constraint } from './client.ts';
import { resolveTarget, type Target } from './config.ts';
import { formats, type Format } from './output.ts';

/** Wrong use of the CLI: exit status 2. */
export class UsageError extends Error {}

/** Problems at places in the user's files ("app.yaml:12:7"), each reported on its own line. */
export class LocatedError extends Error {
  readonly problems: { where: string; message: string }[];
  constructor(problems: { where: string; message: string }[]) {
    super(problems.map(p => `${p.where}: ${p.message}`).join('\n'));
    this.problems = problems;
  }
}

export interface Globals {
  output: Format;
  project: string | undefined;
  context: string | undefined;
}

const GLOBAL = 'Global Options:';

/**
 * Adds -o/--output, -p/--project and --context to a command. They are defined
 * on each CLI command (not on the program) so they work after the command
 * name, e.g. `strata instance list -o json`, without clashing with the options
 * of the server, dev and agent roles.
 */
export function withGlobals(cmd: Command): Command {
  return cmd
    .addOption(new Option('-o, --output <format>', 'output format (default: table)').choices(formats).helpGroup(GLOBAL))
    .addOption(
      new Option(
        '-p, --project <project>',
        'project name or id (default: $STRATA_PROJECT, the context\'s project, or "default")',
      ).helpGroup(GLOBAL),
    )
    .addOption(
      new Option('--context <name>', 'context of the config file to use (default: the current one)').helpGroup(GLOBAL),
    );
}

/** Global options, from the command itself or any parent that has them. */
export function globalsOf(cmd: Command): Globals {
  let output: Format | undefined;
  let project: string | undefined;
  let context: string | undefined;
  for (let c: Command | null = cmd; c; c = c.parent) {
    const o = c.opts<{ output?: Format; project?: string; context?: string }>();
    output ??= o.output;
    project ??= o.project;
    context ??= o.context;
  }
  return { output: output ?? 'table', project, context };
}

export interface Ctx {
  client: Client;
  target: Target;
  format: Format;
  /** the project commands act on (a name or id) */
  project: string;
  /** true when -p/--project or $STRATA_PROJECT chose the project */
  projectExplicit: boolean;
}

export function ctxOf(cmd: Command): Ctx {
  const g = globalsOf(cmd);
  const target = resolveTarget({ context: g.context, project: g.project });
  return {
    client: new Client(target.url, target.token),
    target,
    format: g.output,
    project: target.project,
    projectExplicit: g.project !== undefined || !!process.env.STRATA_PROJECT,
  };
}

const leaves = new WeakSet<Command>();

/** A CLI command that talks to a server; it gets the global options (see addGlobals). */
export function leaf(name: string, description: string): Command {
  const cmd = new Command(name).description(description);
  leaves.add(cmd);
  return cmd;
}

/** Adds the global options to every leaf below `root`, after their own options (help lists them last). */
export function addGlobals(root: Command): void {
  if (leaves.has(root)) withGlobals(root);
  for (const c of root.commands) addGlobals(c);
}

/** A command group (`strata project ...`). */
export function group(name: string, description: string): Command {
  return new Command(name).description(description);
}

// ---- argument parsers (they throw InvalidArgumentError: a usage error) ----

export const collect = (value: string, prev: string[] = []): string[] => [...prev, value];

export function intArg(min = 0): (value: string) => number {
  return value => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a whole number.');
    const n = Number(value);
    if (n < min) throw new InvalidArgumentError(`expected at least ${min}.`);
    return n;
  };
}

/** 512 (MiB), 512Mi, 512M, 2Gi, 2G, 1Ti -> MiB. */
export function parseMemory(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(mi?|gi?|ti?)?b?$/i.exec(value.trim());
  if (!m?.[1]) throw new InvalidArgumentError('expected a size such as 512, 512Mi or 2Gi.');
  const unit = (m[2] ?? 'm').toLowerCase()[0];
  const factor = unit === 'g' ? 1024 : unit === 't' ? 1024 * 1024 : 1;
  const mib = Number(m[1]) * factor;
  if (!Number.isInteger(mib)) throw new InvalidArgumentError('expected a whole number of MiB.');
  return mib;
}

/** 3600 (seconds), 90s, 45m, 12h, 30d, 2w -> seconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+)\s*([smhdw]?)$/i.exec(value.trim());
  if (!m?.[1]) throw new InvalidArgumentError('expected a duration such as 3600, 45m, 12h or 30d.');
  const factor: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };
  return Number(m[1]) * factor[(m[2] ?? '').toLowerCase()]!;
}

/**
 * A quota value: a number, or "unlimited"/"none" for no limit. (Commander turns
 * a parser's null into "", so "unlimited" stays a string until the request.)
 */
export function quotaArg(parse: (v: string) => number): (value: string) => number | 'unlimited' {
  return value => (/^(unlimited|none)$/i.test(value.trim()) ? 'unlimited' : parse(value));
}

/** K=V pairs (repeatable options) -> object. */
export function keyValues(pairs: string[] | undefined, what: string): Record<string, string> | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new UsageError(`${what} ${JSON.stringify(p)} is not KEY=VALUE`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

/** zone==a, zone!=a, gpu (exists), !gpu (does not exist). */
export function parseConstraint(value: string): Constraint {
  const s = value.trim();
  const m = /^([^=!\s]+)\s*(==|!=|=)\s*(.*)$/.exec(s);
  if (m?.[1] && m[2]) return { key: m[1], op: m[2] === '!=' ? '!=' : '==', value: m[3] ?? '' };
  if (/^![^=!\s]+$/.test(s)) return { key: s.slice(1), op: 'not-exists' };
  if (/^[^=!\s]+$/.test(s)) return { key: s, op: 'exists' };
  throw new InvalidArgumentError('expected KEY==VALUE, KEY!=VALUE, KEY (exists) or !KEY (does not exist).');
}

/** `--limit`, `--all` and, for labelled resources, `--labels`. */
export function listOptions(cmd: Command, opts: { labels?: boolean; watch?: boolean } = {}): Command {
  cmd.option('--limit <n>', 'items per page (the server allows 1-1000)', intArg(1));
  cmd.option('--all', 'follow nextCursor and print every page');
  if (opts.labels !== false)
    cmd.option('-l, --labels <selector>', 'only items whose labels match: k=v,k!=v,k (all must hold)');
  if (opts.watch !== false)
    cmd.option('-w, --watch', 're-render whenever the event stream reports a change (Ctrl-C to stop)');
  return cmd;
}

export interface ListFlags {
  limit?: number;
  all?: boolean;
  labels?: string;
  watch?: boolean;
}

/** Tells the user that a table shows one page only. */
export function morePages(nextCursor: string | null, format: Format): string {
  return nextCursor && format === 'table' ? '\n(more items: use --all to list every page, or a larger --limit)' : '';
}

export const INSTANCE_ID = /^ins_[0-9a-z]{26}$/;
