// Bare metal: a whole server, deployed from the same OCI image through its
// BMC (IPMI or Redfish) by its conductor, Ironic's way.
import { metalCapabilities } from '../../drivers/metal/capabilities.ts';
import type { Kind } from '../kind.ts';
import { metalFlagSpec, metalFlags, showMetal } from './cli.ts';
import type { metalOutput, metalSpec } from './fields.ts';
import { metalOptions, presentMetal } from './options.ts';

export const metal = {
  name: 'metal' as const,
  plural: 'bare-metal nodes',
  description: 'bare-metal servers: a whole node, deployed through its BMC',
  foreignFieldsNote: 'a bare-metal node is a whole machine with its own disk and address',
  fields: async () => {
    const { metalSpec: spec, metalOutput: output } = await import('./fields.ts');
    return { spec, output };
  },
  // What it asks of a node at least; placed, it is charged the whole node.
  resources: { vcpus: 1, memoryMib: 512, diskGib: 1 },
  options: metalOptions,
  present: presentMetal,
  check: () => [],
  show: showMetal,
  cli: { flags: metalFlags, spec: metalFlagSpec },
  capabilities: metalCapabilities,
  hints: {
    exec: 'exec runs a process in a container; a bare-metal node has its serial console (strata logs, strata console)',
    pause: 'a whole server cannot be paused; stop it instead',
    healthChecks: 'health checks of bare-metal nodes are not offered yet',
  },
  wholeHost: true,
  hostMemoryOverheadMib: 0,
  createDriver: async s => (await import('./driver.ts')).createMetalDriver(s),
} satisfies Kind<typeof metalSpec, typeof metalOutput>;
