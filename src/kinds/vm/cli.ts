// A VM's flags of `strata run` and its rows of `strata instance show`.
import { cloudInitFlagSpec, cloudInitFlags } from '../cloud-init.ts';
import type { CliFlag, Shown } from '../kind.ts';
import type { VmSpec, vmOutput } from './fields.ts';
import { machineTypes } from './options.ts';

export const vmFlags: readonly CliFlag[] = [
  { flags: '--machine <type>', description: 'microvm (fast) or q35 (PCI, full ACPI)', choices: machineTypes },
  ...cloudInitFlags,
];

export function vmFlagSpec(o: Record<string, unknown>): Partial<VmSpec> {
  const spec: Partial<VmSpec> = {};
  if (o.machine === 'microvm' || o.machine === 'q35') spec.machine = o.machine;
  const cloudInit = cloudInitFlagSpec(o);
  if (cloudInit) spec.cloudInit = cloudInit;
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
