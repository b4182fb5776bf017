// Runs the command tree: uniform help and usage errors (exit 2), and expected
// failures reported as one `error: ...` line (exit 1), never a stack trace.
import { type Command, type CommanderError, InvalidArgumentError } from 'commander';
import { ApiError, ConnectError } from './client.ts';
import { addGlobals, LocatedError, UsageError } from './common.ts';
import { ConfigError } from './config.ts';

const EXIT_API = 1;
const EXIT_USAGE = 2;

function each(cmd: Command, fn: (c: Command) => void): void {
  fn(cmd);
  for (const c of cmd.commands) each(c, fn);
}

function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Applies the settings `addCommand` does not pass down to every command. */
export function finalize(program: Command): void {
  addGlobals(program);
  each(program, c => {
    c.showHelpAfterError(`(run "${fullName(c)} --help" for usage)`);
    c.configureHelp({ sortSubcommands: c !== program, showGlobalOptions: false });
    c.exitOverride((err: CommanderError) => {
      // Help and --version exit 0; everything else commander reports is a usage error.
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    });
  });
}

function detailLines(details: unknown): string[] {
  if (!Array.isArray(details) || details.length < 2) return [];
  return details
    .filter(
      (d): d is { field: string; message: string } =>
        typeof d === 'object' && d !== null && 'field' in d && 'message' in d,
    )
    .map(d => `  ${String(d.field)}: ${String(d.message)}`);
}

export function report(err: unknown): number {
  const say = (s: string) => process.stderr.write(`${s}\n`);
  if (err instanceof ApiError) {
    say(`error: ${err.message}`);
    for (const l of detailLines(err.details)) say(l);
    if (err.status === 401) say('(check the token: `strata context show`, or log in again with `strata login URL`)');
    return EXIT_API;
  }
  if (err instanceof ConnectError) {
    say(`error: cannot reach the Strata server at ${err.url} (${err.message}).`);
    say(
      'Is it running? Start a local one with `strata dev`, or point the CLI at yours with `strata login URL` (or STRATA_URL).',
    );
    return EXIT_API;
  }
  if (err instanceof LocatedError) {
    for (const p of err.problems) say(`error: ${p.where}: ${p.message}`);
    return EXIT_API;
  }
  if (err instanceof UsageError || err instanceof InvalidArgumentError) {
    say(`error: ${err.message}`);
    return EXIT_USAGE;
  }
  if (err instanceof ConfigError) {
    say(`error: ${err.message}`);
    return EXIT_API;
  }
  const e = err as Error;
  say(`error: ${e?.message ?? String(err)}`);
  if (process.env.STRATA_DEBUG) say(e?.stack ?? '');
  return EXIT_API;
}

export async function runCli(program: Command, argv: string[]): Promise<void> {
  finalize(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = report(err);
  }
}
