// Containers: processes in namespaces and cgroups on the host, run by a
// Docker API runtime (Podman here).
import type { Kind } from '../kind.ts';
import { containerCapabilities } from '../../drivers/container/capabilities.ts';
import { containerFlagSpec, containerFlags, showContainer } from './cli.ts';
import type { containerOutput, containerSpec } from './fields.ts';
import { checkContainer, containerOptions, presentContainer } from './options.ts';

export const container = {
  name: 'container' as const,
  plural: 'containers',
  description: 'processes isolated by namespaces and cgroups on a host',
  fields: async () => {
    const { containerSpec: spec, containerOutput: output } = await import('./fields.ts');
    return { spec, output };
  },
  resources: { vcpus: 1, memoryMib: 256, diskGib: 0 },
  options: containerOptions,
  present: presentContainer,
  check: checkContainer,
  show: showContainer,
  cli: { flags: containerFlags, spec: containerFlagSpec },
  capabilities: containerCapabilities,
  hints: { console: 'for a shell in a container, use strata exec' },
  hostMemoryOverheadMib: 0,
  createDriver: async s => (await import('./driver.ts')).createContainerDriver(s),
} satisfies Kind<typeof containerSpec, typeof containerOutput>;
