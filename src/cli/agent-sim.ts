// `strata agent --sim N`: N simulated hosts in this process (src/agent/sim-fleet.ts).
import { InvalidArgumentError } from 'commander';

export interface SimFlags {
  sim: number;
  simCpus: number;
  simMemory: number;
  simDisk: number;
  simZones: number;
  simRacks: number;
}

/** A whole number from `min` to `max`, for commander. */
export function count(min: number, max: number): (v: string) => number {
  return v => {
    const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
    if (!(n >= min && n <= max)) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

export interface SimSettings {
  server: string;
  joinToken?: string | undefined;
  prefix: string;
  dataDir: string;
  region?: string | undefined;
  labels: Record<string, string>;
  cpuOvercommit: number;
  logLevel: string;
}

export async function runSimFleet(f: SimFlags, s: SimSettings): Promise<void> {
  const { pino } = await import('pino');
  const { SimFleet } = await import('../agent/sim-fleet.ts');
  const { installLastResort } = await import('../agent/last-resort.ts');
  const log = pino({ level: s.logLevel });
  const fleet = new SimFleet({
    server: s.server,
    joinToken: s.joinToken,
    count: f.sim,
    prefix: s.prefix,
    dataDir: s.dataDir,
    shape: {
      vcpus: f.simCpus,
      memoryMib: f.simMemory,
      diskGib: f.simDisk,
      cpuOvercommit: s.cpuOvercommit,
      region: s.region,
      labels: s.labels,
    },
    zones: f.simZones,
    racksPerZone: f.simRacks,
    log,
  });
  installLastResort((scope, err) => fleet.instanceCrashed(scope, err), log);
  const started = Date.now();
  try {
    await fleet.start();
  } catch (err) {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  log.info({ hosts: f.sim, ms: Date.now() - started }, 'simulated fleet up');
  const stop = async () => {
    await fleet.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}
