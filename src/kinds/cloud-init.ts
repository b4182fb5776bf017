// A NoCloud seed (cloud-init) for kinds whose instances are whole machines
// (VMs, bare-metal nodes): its spec field and its CLI flags, shared.
import { readFileSync } from 'node:fs';
import type { CliFlag } from './kind.ts';

export interface CloudInitSpec {
  userData?: string;
  sshAuthorizedKeys?: string[];
}

export const cloudInitFlags: readonly CliFlag[] = [
  { flags: '--user-data <file>', description: 'cloud-init user-data from a file (a NoCloud seed is attached)' },
  {
    flags: '--ssh-key <key>',
    description: 'an SSH public key for cloud-init, or @FILE (repeatable)',
    parse: (v, prev) => [...((prev as string[] | undefined) ?? []), v],
  },
];

/** The seed the flags describe, if any. */
export function cloudInitFlagSpec(o: Record<string, unknown>): CloudInitSpec | undefined {
  const userData = typeof o.userData === 'string' ? o.userData : undefined;
  const sshKeys = Array.isArray(o.sshKey) ? (o.sshKey as string[]) : [];
  if (userData === undefined && sshKeys.length === 0) return undefined;
  const keys = sshKeys.map(k => (k.startsWith('@') ? readFileSync(k.slice(1), 'utf8').trim() : k));
  return {
    ...(userData !== undefined ? { userData: readFileSync(userData, 'utf8') } : {}),
    ...(keys.length > 0 ? { sshAuthorizedKeys: keys } : {}),
  };
}
