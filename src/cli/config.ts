// CLI contexts: named (server URL, token, project) triples in
// ~/.config/strata/config.yaml (or $STRATA_CONFIG), mode 0600.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';

export interface Context {
  url: string;
  token: string;
  project?: string;
}

export interface ConfigFile {
  currentContext?: string;
  contexts: Record<string, Context>;
}

export function configPath(): string {
  if (process.env['STRATA_CONFIG']) return process.env['STRATA_CONFIG'];
  const base = process.env['XDG_CONFIG_HOME'] || join(homedir(), '.config');
  return join(base, 'strata', 'config.yaml');
}

export function readConfig(file = configPath()): ConfigFile {
  if (!existsSync(file)) return { contexts: {} };
  const parsed = (parse(readFileSync(file, 'utf8')) ?? {}) as Partial<ConfigFile>;
  return { ...parsed, contexts: parsed.contexts ?? {} };
}

export function writeConfig(cfg: ConfigFile, file = configPath()): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, stringify(cfg), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function saveContext(name: string, ctx: { url: string; token: string; project?: string }, opts: { makeCurrent?: boolean } = {}): string {
  const file = configPath();
  const cfg = readConfig(file);
  cfg.contexts[name] = { ...ctx };
  if (opts.makeCurrent || !cfg.currentContext) cfg.currentContext = name;
  writeConfig(cfg, file);
  return file;
}
