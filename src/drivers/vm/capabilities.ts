import type { Capabilities } from '../../model/capabilities.ts';

/**
 * What a VM can do: its driver's, and its kind's (src/kinds/vm/). No exec:
 * nothing of ours runs in the guest, so its host checks it over the network
 * only.
 */
export const vmCapabilities: Capabilities = {
  exec: false,
  pause: true,
  console: true,
  reboot: true,
  resize: false,
  healthChecks: ['http', 'tcp'],
  diskImageUrls: false,
};
