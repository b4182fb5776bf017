// CLI contexts: named (server URL, token, project) triples in
// $XDG_CONFIG_HOME/strata/config.yaml (default ~/.config/strata/config.yaml,
// or the file named by $STRATA_CONFIG), mode 0600 since it holds tokens.
//
//   currentContext: dev
//   contexts:
//     dev: { url: http://127.0.0.1:7070, token: stk_..., project: default }
//
// `strata dev` and `strata login` write it with saveContext(); every other
// command reads it through resolveTarget(), where $STRATA_URL, $STRATA_TOKEN and
// $STRATA_PROJECT override the chosen context.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { readYaml, writeYaml } from './config-yaml.ts';

export interface Context {
  url: string;
  token: string;
  project?: string;
}

export interface ConfigFile {
  currentContext?: string;
  contexts: Record<string, Context>;
}

export const DEFAULT_PROJECT = 'default';

export function configPath(): string {
  if (process.env.STRATA_CONFIG) return process.env.STRATA_CONFIG;
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'strata', 'config.yaml');
}

export class ConfigError extends Error {}

export function readConfig(file = configPath()): ConfigFile {
  if (!existsSync(file)) return { contexts: {} };
  let parsed: unknown;
  try {
    parsed = readYaml(readFileSync(file, 'utf8')) ?? {};
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`${file} is not a Strata config file (expected a mapping with currentContext and contexts)`);
  }
  const cfg = parsed as Partial<ConfigFile>;
  const contexts = cfg.contexts && typeof cfg.contexts === 'object' ? cfg.contexts : {};
  return { ...cfg, contexts };
}

export function writeConfig(cfg: ConfigFile, file = configPath()): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  const out: ConfigFile =
    cfg.currentContext === undefined
      ? { contexts: cfg.contexts }
      : { currentContext: cfg.currentContext, contexts: cfg.contexts };
  writeFileSync(tmp, writeYaml(out), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

/**
 * Creates or replaces the context `name` and returns the config file path. The
 * context becomes current when asked to, or when there is no current context yet.
 */
export function saveContext(
  name: string,
  ctx: { url: string; token: string; project?: string },
  opts: { makeCurrent?: boolean } = {},
): string {
  const file = configPath();
  const cfg = readConfig(file);
  const entry: Context = { url: ctx.url, token: ctx.token };
  if (ctx.project !== undefined) entry.project = ctx.project;
  cfg.contexts[name] = entry;
  if (opts.makeCurrent || !cfg.currentContext || !cfg.contexts[cfg.currentContext]) cfg.currentContext = name;
  writeConfig(cfg, file);
  return file;
}

/** Makes `name` the current context; throws ConfigError when it does not exist. */
export function useContext(name: string): string {
  const file = configPath();
  const cfg = readConfig(file);
  if (!cfg.contexts[name]) throw new ConfigError(`no context ${JSON.stringify(name)} in ${file}${knownContexts(cfg)}`);
  cfg.currentContext = name;
  writeConfig(cfg, file);
  return file;
}

/** Removes a context; when it was current, no context is current afterwards. */
export function deleteContext(name: string): string {
  const file = configPath();
  const cfg = readConfig(file);
  if (!cfg.contexts[name]) throw new ConfigError(`no context ${JSON.stringify(name)} in ${file}${knownContexts(cfg)}`);
  delete cfg.contexts[name];
  if (cfg.currentContext === name) delete cfg.currentContext;
  writeConfig(cfg, file);
  return file;
}

function knownContexts(cfg: ConfigFile): string {
  const names = Object.keys(cfg.contexts);
  return names.length ? ` (known: ${names.join(', ')})` : ' (there are none; run `strata login URL` or `strata dev`)';
}

/** Where a command sends its requests, and in which project. */
export interface Target {
  url: string;
  token: string;
  project: string;
  /** the context used, if any */
  context?: string;
  /** where url and token came from, for messages */
  source: string;
}

/**
 * Precedence: --context flag > $STRATA_URL/$STRATA_TOKEN > current context.
 * Project: --project flag > $STRATA_PROJECT > the context's project > "default".
 */
export function resolveTarget(opts: { context?: string | undefined; project?: string | undefined }): Target {
  const env = process.env;
  const envUrl = env.STRATA_URL || undefined;
  const envToken = env.STRATA_TOKEN || undefined;
  const envProject = env.STRATA_PROJECT || undefined;
  const pick = (ctxProject: string | undefined) => opts.project ?? envProject ?? ctxProject ?? DEFAULT_PROJECT;

  if (opts.context === undefined && envUrl && envToken) {
    return { url: envUrl, token: envToken, project: pick(undefined), source: '$STRATA_URL and $STRATA_TOKEN' };
  }
  const file = configPath();
  const cfg = readConfig(file);
  const name = opts.context ?? cfg.currentContext;
  const ctx = name === undefined ? undefined : cfg.contexts[name];
  if (opts.context !== undefined && !ctx)
    throw new ConfigError(`no context ${JSON.stringify(opts.context)} in ${file}${knownContexts(cfg)}`);
  const url = (opts.context === undefined ? envUrl : undefined) ?? ctx?.url;
  const token = (opts.context === undefined ? envToken : undefined) ?? ctx?.token;
  if (!url || !token) {
    const missing = !url ? 'server URL' : 'token';
    throw new ConfigError(
      `no ${missing} configured: run \`strata login URL --token-file FILE\` (or \`strata dev\` for a local server), or set STRATA_URL and STRATA_TOKEN`,
    );
  }
  const target: Target = {
    url,
    token,
    project: pick(ctx?.project),
    source: name ? `context ${JSON.stringify(name)}` : 'environment',
  };
  if (name !== undefined && ctx) target.context = name;
  return target;
}
