// A VM's flags of `strata run` and its rows of `strata instance show`.
import { readFileSync } from 'node:fs';
import type { CliFlag, Shown } from '../kind.ts';
import type { VmSpec, vmOutput } from './fields.ts';
import { machineTypes } from './options.ts';

export const vmFlags: readonly CliFlag[] = [
  { flags: '--machine <type>', description: 'microvm (fast) or q35 (PCI, full ACPI)', choices: machineTypes },
  { flags: '--user-data <file>', description: 'cloud-init user-data from a file (a NoCloud seed is attached)' },
  {
    flags: '--ssh-key <key>',
    description: 'an SSH public key for cloud-init, or @FILE (repeatable)',
    parse: (v, prev) => [...((prev as string[] | undefined) ?? []), v],
  },
];

export function vmFlagSpec(o: Record<string, unknown>): Partial<VmSpec> {
  const spec: Partial<VmSpec> = {};
  if (o.machine === 'microvm' || o.machine === 'q35') spec.machine = o.machine;
  const userData = typeof o.userData === 'string' ? o.userData : undefined;
  const sshKeys = Array.isArray(o.sshKey) ? (o.sshKey as string[]) : [];
  if (userData !== undefined || sshKeys.length > 0) {
    const keys = sshKeys.map(k => (k.startsWith('@') ? readFileSync(k.slice(1), 'utf8').trim() : k));
    spec.cloudInit = {
      ...(userData !== undefined ? { userData: readFileSync(userData, 'utf8') } : {}),
      ...(keys.length > 0 ? { sshAuthorizedKeys: keys } : {}),
    };
  }
  return spec;
}

export function showVm(i: Shown<typeof vmOutput>): [string, unknown][] {
  return [
    ['Machine', i.machine],
    ['Accelerator', i.observed.accelerator ?? '-'],
    [
      'Cloud-init',
      i.cloudInit
        ? `seed with ${i.cloudInit.sshAuthorizedKeys?.length ?? 0} SSH keys${i.cloudInit.userData ? ' and user-data' : ''}`
        : '-',
    ],
  ];
}
