// The levels of the topology tree a placement rule can be stated at, from the
// narrowest (one host) to the widest (a region). See src/scheduler/topology.ts.

export const levels = ['host', 'physical-host', 'rack', 'zone', 'region'] as const;
export type Level = (typeof levels)[number];

/** Where a host sits and what it holds back for itself, as its agent is told (strata agent flags). */
export interface TopologyFlags {
  region?: string | undefined;
  zone?: string | undefined;
  rack?: string | undefined;
  labels?: Record<string, string> | undefined;
  kind?: 'physical' | 'virtual' | undefined;
  parent?: string | undefined;
  /** Memory (MiB) and vCPUs held back for the host itself. */
  reserveMemoryMib?: number | undefined;
  reserveVcpus?: number | undefined;
  /** How many vCPUs of instances each core may carry (containers rarely use a whole core). */
  cpuOvercommit?: number | undefined;
}
