// A bare-metal instance's config drive: a cloud-init NoCloud volume (ISO 9660
// labelled cidata) with meta-data and user-data, for images that run
// cloud-init, and Strata's own settings for guest/metal-init under strata/:
// `config`, the VM's guest config (every value single-quoted), and
// `authorized_keys`. Every value here comes from a tenant: each is checked
// for form and size before anything is written, and none reaches a shell
// unquoted, here or on the node.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { metaData } from '../../vm/cloud-init.ts';
import { guestConfig } from '../../vm/guest-config.ts';

const run = promisify(execFile);

export interface ConfigDriveSettings {
  instanceId: string;
  hostname: string;
  sshKeys: string[];
  /** cloud-init user-data, for images that run cloud-init under their own init. */
  userData?: string;
  /** The command metal-init runs in the root; empty: the image's /sbin/init. */
  command: string[];
  env: Record<string, string>;
  workingDir?: string;
}

export const CONFIG_DRIVE_LABEL = 'cidata';
/** Together these keep a drive to a few MiB: the partition the deploy adds for it at the disk's end. */
export const LIMITS = {
  userDataBytes: 256 * 1024,
  sshKeys: 64,
  sshKeyBytes: 16 * 1024,
  /** command, environment and working dir together */
  processBytes: 256 * 1024,
} as const;

/** Writes `DIR/config-drive.iso` and returns its path. */
export async function buildConfigDrive(dir: string, cfg: ConfigDriveSettings): Promise<string> {
  check(cfg);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const iso = join(dir, 'config-drive.iso');
  const tree = mkdtempSync(join(dir, '.cidata-'));
  try {
    writeFileSync(join(tree, 'meta-data'), metaData(cfg.instanceId, cfg.hostname, cfg.sshKeys));
    writeFileSync(join(tree, 'user-data'), cfg.userData ?? '#cloud-config\n{}\n');
    mkdirSync(join(tree, 'strata'));
    writeFileSync(
      join(tree, 'strata', 'config'),
      guestConfig({
        hostname: cfg.hostname,
        mode: cfg.command.length > 0 ? 'run' : 'init',
        command: cfg.command,
        env: cfg.env,
        workingDir: cfg.workingDir || '/',
      }),
    );
    writeFileSync(join(tree, 'strata', 'authorized_keys'), cfg.sshKeys.map(k => `${k}\n`).join(''));
    await run('genisoimage', [
      '-quiet',
      '-output',
      `${iso}.new`,
      '-volid',
      CONFIG_DRIVE_LABEL,
      '-joliet',
      '-rock',
      tree,
    ]);
    renameSync(`${iso}.new`, iso);
    return iso;
  } catch (err) {
    rmSync(`${iso}.new`, { force: true });
    throw new Error(`could not build the config drive: ${(err as { stderr?: string }).stderr || String(err)}`);
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;
const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this rejects
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Throws a message fit for the tenant when a setting cannot go on the drive. */
export function check(cfg: ConfigDriveSettings): void {
  if (!INSTANCE_ID.test(cfg.instanceId)) throw new Error('config drive: the instance id is not a plain identifier');
  if (!HOSTNAME.test(cfg.hostname)) throw new Error(`config drive: ${JSON.stringify(cfg.hostname)} is not a hostname`);
  if (cfg.sshKeys.length > LIMITS.sshKeys) throw new Error(`config drive: more than ${LIMITS.sshKeys} SSH keys`);
  for (const k of cfg.sshKeys) {
    if (!k.trim() || CONTROL.test(k) || Buffer.byteLength(k) > LIMITS.sshKeyBytes)
      throw new Error('config drive: an SSH key must be one line of printable text');
  }
  if (cfg.userData !== undefined && Buffer.byteLength(cfg.userData) > LIMITS.userDataBytes)
    throw new Error(`config drive: user data is larger than ${LIMITS.userDataBytes} bytes`);
  const words = [...cfg.command, ...Object.keys(cfg.env), ...Object.values(cfg.env), cfg.workingDir ?? '/'];
  // A NUL cannot cross a shell word; it would cut the value short on the node.
  if (words.some(w => w.includes('\0'))) throw new Error('config drive: a command, variable or path holds a NUL');
  for (const name of Object.keys(cfg.env))
    if (!name || name.includes('=')) throw new Error(`config drive: ${JSON.stringify(name)} cannot name a variable`);
  if (cfg.workingDir !== undefined && cfg.workingDir !== '' && !cfg.workingDir.startsWith('/'))
    throw new Error('config drive: the working dir must be an absolute path');
  if (words.reduce((n, w) => n + Buffer.byteLength(w), 0) > LIMITS.processBytes)
    throw new Error(`config drive: command and environment are larger than ${LIMITS.processBytes} bytes`);
}
