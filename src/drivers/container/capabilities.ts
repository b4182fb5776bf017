import type { Capabilities } from '../../model/capabilities.ts';

/** What a container can do: its driver's, and its kind's (src/kinds/container/). */
export const containerCapabilities: Capabilities = {
  exec: true,
  pause: true,
  console: false,
  reboot: false,
  resize: false,
  healthChecks: ['exec', 'http', 'tcp'],
  diskImageUrls: false,
};
