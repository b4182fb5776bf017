// A simulated fleet: many agents in one process, each its own host (identity,
// heartbeat, assignment watch, stream control connection) running its
// instances on the simulated driver. For benchmarks of the control plane and
// tests of placement at scale; `strata agent --sim N` runs one.
//
// Cheap per host: an idle host costs one long-poll and one WebSocket to the
// server and a heartbeat timer (jittered, so the fleet's beats spread out);
// workloads cost memory only, and a timer only when told to exit by themselves.
// The hosts' instance reports share a bounded number in flight, so the fleet
// holds about two connections per host plus that bound (and the heartbeats
// of the moment).
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Fingerprint } from '../model/agent-protocol.ts';
import type { DriverName } from '../model/schemas.ts';
import { SimRuntime, simDrivers } from '../drivers/sim/driver.ts';
import { Gate } from '../lib/gate.ts';
import { Agent } from './agent.ts';
import type { Scope } from './last-resort.ts';

export interface SimHostShape {
  /** Cores, memory (MiB) and disk (GiB) of each simulated host. */
  vcpus: number;
  memoryMib: number;
  diskGib: number;
  /** vCPUs of instances per core, as a real agent's --cpu-overcommit. */
  cpuOvercommit?: number | undefined;
  region?: string | undefined;
  zone?: string | undefined;
  rack?: string | undefined;
  labels?: Record<string, string> | undefined;
}

/** A simulated host's fingerprint: its given shape, memory held back as a real host does, marked simulated. */
export function simFingerprint(shape: SimHostShape): (drivers: DriverName[]) => Fingerprint {
  const reserveMemory = Math.min(1024, Math.floor(shape.memoryMib / 10));
  const base: Omit<Fingerprint, 'drivers'> = {
    capacity: { vcpus: shape.vcpus, memoryMib: shape.memoryMib, diskGib: shape.diskGib },
    allocatable: {
      vcpus: Math.floor(shape.vcpus * (shape.cpuOvercommit ?? 4)),
      memoryMib: shape.memoryMib - reserveMemory,
      diskGib: shape.diskGib,
    },
    topology: { region: shape.region ?? '', zone: shape.zone ?? '', rack: shape.rack ?? '' },
    labels: shape.labels ?? {},
    info: { simulated: true, kernel: 'simulated', os: 'simulated', cpuModel: 'simulated', agentPid: process.pid },
  };
  return drivers => ({ ...base, drivers });
}

/** Host `i` of the fleet: zones take hosts in turn, then racks within each zone (rack names carry their zone). */
export function simPlacement(i: number, zones: number, racksPerZone: number): { zone: string; rack: string } {
  const zone = `z${(i % zones) + 1}`;
  return { zone, rack: `${zone}-r${(Math.floor(i / zones) % racksPerZone) + 1}` };
}

export function simHostName(prefix: string, i: number, count: number): string {
  return `${prefix}-${String(i + 1).padStart(Math.max(3, String(count).length), '0')}`;
}

export interface SimFleetOptions {
  server: string;
  joinToken?: string | undefined;
  count: number;
  /** Host names are PREFIX-001, PREFIX-002, ... */
  prefix: string;
  /** Each host keeps its identity in DATADIR/NAME, so a restarted fleet is the same hosts. */
  dataDir: string;
  shape: Omit<SimHostShape, 'zone' | 'rack'>;
  zones: number;
  racksPerZone: number;
  log: Logger;
  /** Hosts started at once: each registration or resume is one write on the server. */
  concurrency?: number;
  /**
   * Instance reports the whole fleet has in flight at once. Each would
   * otherwise take a connection of its own: a burst of reports from every
   * host would open thousands, past the server's connection cap.
   */
  reportsInFlight?: number;
  waitSeconds?: number;
}

export class SimFleet {
  /** One runtime for the whole fleet, like one container runtime shared by agents; each host lists its own. */
  readonly runtime = new SimRuntime();
  readonly agents: Agent[] = [];
  private readonly o: SimFleetOptions;
  private readonly gate: Gate;

  constructor(o: SimFleetOptions) {
    this.o = o;
    this.gate = new Gate(o.reportsInFlight ?? 64);
  }

  /** Starts every host; if one cannot start, the ones started are stopped and its error thrown. */
  async start(): Promise<void> {
    const o = this.o;
    const pending = Array.from({ length: o.count }, (_, i) => i);
    const worker = async () => {
      for (let i = pending.shift(); i !== undefined; i = pending.shift()) {
        const name = simHostName(o.prefix, i, o.count);
        const agent = new Agent({
          server: o.server,
          joinToken: o.joinToken,
          name,
          dataDir: join(o.dataDir, name),
          topology: {},
          drivers: simDrivers(this.runtime),
          fingerprint: simFingerprint({ ...o.shape, ...simPlacement(i, o.zones, o.racksPerZone) }),
          log: o.log.child({ host: name }),
          requestGate: this.gate,
          ...(o.waitSeconds !== undefined ? { waitSeconds: o.waitSeconds } : {}),
        });
        try {
          await agent.start();
        } catch (err) {
          pending.length = 0;
          throw err;
        }
        this.agents.push(agent);
      }
    };
    const workers = Array.from({ length: Math.min(o.count, o.concurrency ?? 32) }, worker);
    const results = await Promise.allSettled(workers);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.stop();
      throw failed.reason;
    }
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.agents.map(a => a.stop()));
  }

  /** An error nobody caught in an instance's work fails that instance, on the host that holds it. */
  instanceCrashed(s: Scope, err: unknown): void {
    this.agents.find(a => a.holds(s.instance))?.instanceCrashed(s, err);
  }
}
