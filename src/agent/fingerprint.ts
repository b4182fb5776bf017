// What this host offers: CPUs, memory, disk, kernel, topology and which drivers
// actually work here (a driver is offered only when its probe succeeds).
import { statfsSync } from 'node:fs';
import os from 'node:os';
import type { Fingerprint } from '../model/agent-protocol.ts';
import type { DriverName } from '../model/schemas.ts';
import type { TopologyFlags } from '../model/topology.ts';

export function fingerprint(dataDir: string, flags: TopologyFlags, drivers: DriverName[]): Fingerprint {
  const vcpus = os.availableParallelism();
  const memoryMib = Math.floor(os.totalmem() / 1024 / 1024);
  const fs = statfsSync(dataDir);
  const diskGib = Math.floor((fs.blocks * fs.bsize) / 1024 ** 3);
  const freeDiskGib = Math.floor((fs.bavail * fs.bsize) / 1024 ** 3);
  const reserveMem = flags.reserveMemoryMib ?? Math.min(1024, Math.floor(memoryMib / 10));
  const reserveCpu = flags.reserveVcpus ?? 0;
  const f: Fingerprint = {
    capacity: { vcpus, memoryMib, diskGib },
    allocatable: {
      vcpus: Math.max(0, Math.floor((vcpus - reserveCpu) * (flags.cpuOvercommit ?? 4))),
      memoryMib: Math.max(0, memoryMib - reserveMem),
      diskGib: Math.min(diskGib, freeDiskGib),
    },
    drivers,
    topology: { region: flags.region ?? '', zone: flags.zone ?? '', rack: flags.rack ?? '' },
    labels: flags.labels ?? {},
    info: {
      kernel: os.release(),
      os: `${os.type()} ${os.machine()}`,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      hostname: os.hostname(),
      agentPid: process.pid,
    },
  };
  if (flags.kind) f.kind = flags.kind;
  if (flags.parent) f.parent = flags.parent;
  return f;
}
