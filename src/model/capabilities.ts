// What a kind of instance can do beyond start, stop and delete. A kind
// declares its capabilities (src/kinds/), its driver declares the same ones
// (src/drivers/), and the API refuses what a kind cannot serve at once, with a
// 400 that says so, rather than accepting it and failing on the host later.

export const healthCheckTypes = ['exec', 'http', 'tcp'] as const;
export type HealthCheckType = (typeof healthCheckTypes)[number];

/** The operations a kind may lack; each names a request of the API (resize has none yet). */
export const capabilityNames = ['exec', 'pause', 'console', 'reboot', 'resize'] as const;
export type Capability = (typeof capabilityNames)[number];

export interface Capabilities {
  /** Run a process inside the running instance (strata exec). */
  exec: boolean;
  /** Freeze it in place and thaw it. */
  pause: boolean;
  /** Attach to its console (a serial port). */
  console: boolean;
  /** Reboot in place on restart, rather than stop and start. */
  reboot: boolean;
  /** Change its resources while it exists. */
  resize: boolean;
  /** The health checks its host can run for it. */
  healthChecks: readonly HealthCheckType[];
  /** Its image may be the http(s) URL of a whole-disk image as well as an OCI reference. */
  diskImageUrls: boolean;
}

/** Whether two declarations say the same (a driver's must match its kind's). */
export function sameCapabilities(a: Capabilities, b: Capabilities): boolean {
  return (
    capabilityNames.every(c => a[c] === b[c]) &&
    a.diskImageUrls === b.diskImageUrls &&
    a.healthChecks.length === b.healthChecks.length &&
    a.healthChecks.every(t => b.healthChecks.includes(t))
  );
}
