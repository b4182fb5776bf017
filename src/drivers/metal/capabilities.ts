import type { Capabilities } from '../../model/capabilities.ts';

/**
 * What a metal instance can do: its driver's, and its kind's (src/kinds/metal/).
 * Nothing of ours runs in the node's OS, and a whole server is not paused:
 * it has its serial console and its BMC.
 */
export const metalCapabilities: Capabilities = {
  exec: false,
  pause: false,
  console: true,
  reboot: false,
  resize: false,
  healthChecks: [],
  diskImageUrls: true,
};
