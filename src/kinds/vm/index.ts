// VMs: whole guests under QEMU (KVM where it works), booted from a disk image
// or from an OCI image's root filesystem.
import type { Kind } from '../kind.ts';
import { vmCapabilities } from '../../drivers/vm/capabilities.ts';
import { showVm, vmFlagSpec, vmFlags } from './cli.ts';
import type { vmOutput, vmSpec } from './fields.ts';
import { presentVm, vmOptions } from './options.ts';

export const vm = {
  name: 'vm' as const,
  plural: 'VMs',
  description: 'virtual machines: whole guests under QEMU',
  foreignFieldsNote: 'a VM has its own address, disk and users',
  fields: async () => {
    const { vmSpec: spec, vmOutput: output } = await import('./fields.ts');
    return { spec, output };
  },
  resources: { vcpus: 1, memoryMib: 512, diskGib: 2 },
  options: vmOptions,
  present: presentVm,
  check: () => [],
  show: showVm,
  cli: { flags: vmFlags, spec: vmFlagSpec },
  capabilities: vmCapabilities,
  hints: {
    exec: 'exec runs a process in a container; a VM has its serial console (strata logs, strata console)',
    healthChecks: "its host checks a VM from outside, over the VM's address",
  },
  // QEMU's own code and devices, and under TCG a translation cache bounded to
  // 128 MiB (src/drivers/vm/driver.ts).
  hostMemoryOverheadMib: 192,
  createDriver: async s => (await import('./driver.ts')).createVmDriver(s),
} satisfies Kind<typeof vmSpec, typeof vmOutput>;
