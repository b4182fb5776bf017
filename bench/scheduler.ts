// The scheduler at scale, on simulated clusters: the same Scheduler the
// placer runs, fed a synthetic snapshot instead of the store (hosts exist only
// as records, as with a simulated driver), so what is measured is placement.
//
//   node bench/scheduler.ts [--placements 100000] [--record]
//
// Each size runs in its own process (clean heap, honest peak memory):
// 1,000, 10,000 and 50,000 hosts in 3 regions x 4 zones x racks of 20 servers,
// VM hosts nested on a third of the servers; 100,000 placements mixing kinds
// (containers 70%, VMs 30%), label constraints (zone ==, gpu exists), spread
// groups over zones (max skew 1) and hard anti-affinity groups at the
// physical-host level (which must see through the nested VM hosts).
import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Scheduler, type Request, type SchedHost } from '../src/scheduler/scheduler.ts';

const { values: flags } = parseArgs({
  options: {
    placements: { type: 'string', default: '100000' },
    size: { type: 'string' },
    record: { type: 'boolean', default: false },
  },
});
const placements = Number(flags.placements);

interface Result {
  hosts: number;
  placed: number;
  refused: number;
  perSecond: number;
  p50us: number;
  p99us: number;
  buildMs: number;
  peakRssMib: number;
  heapMib: number;
  violations: number;
}

/** A random generator with a seed, so every run places the same workload. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function cluster(total: number): { hosts: SchedHost[]; physicalOf: Map<string, string> } {
  const hosts: SchedHost[] = [];
  const physicalOf = new Map<string, string>();
  // A third of the servers carry one VM host each: servers + nested = total.
  const servers = Math.ceil((total * 3) / 4);
  for (let i = 0; i < servers && hosts.length < total; i++) {
    const zone = i % 12;
    const id = `p${i}`;
    hosts.push({
      id,
      parentHostId: null,
      topology: { region: `r${zone % 3}`, zone: `z${zone}`, rack: `k${Math.floor(i / 20)}` },
      state: 'ready',
      drivers: ['container', 'vm'],
      pool: null,
      labels: i % 10 === 0 ? { gpu: 'a100' } : {},
      allocatable: { vcpus: 128, memoryMib: 512 * 1024, diskGib: 4000 },
      free: { vcpus: 128, memoryMib: 512 * 1024, diskGib: 4000 },
    });
    physicalOf.set(id, id);
    if (i % 3 === 0 && hosts.length < total) {
      const vm = `v${i}`;
      hosts.push({
        id: vm,
        parentHostId: id,
        topology: { region: '', zone: '', rack: '' },
        state: 'ready',
        drivers: ['container'],
        pool: null,
        labels: {},
        allocatable: { vcpus: 16, memoryMib: 64 * 1024, diskGib: 200 },
        free: { vcpus: 16, memoryMib: 64 * 1024, diskGib: 200 },
      });
      physicalOf.set(vm, id);
    }
  }
  return { hosts, physicalOf };
}

function runSize(total: number): Result {
  const { hosts, physicalOf } = cluster(total);
  const t0 = performance.now();
  const s = new Scheduler(hosts, new Set());
  const buildMs = performance.now() - t0;
  const rand = rng(total);
  const lat = new Float64Array(placements);
  const antiMembers = new Map<string, Set<string>>();
  let placed = 0;
  let refused = 0;
  let violations = 0;
  let peakRss = process.memoryUsage().rss;
  const start = performance.now();
  for (let i = 0; i < placements; i++) {
    const x = rand();
    const r: Request = {
      projectId: 'bench',
      kind: x < 0.7 ? 'container' : 'vm',
      vcpus: 1 + Math.floor(rand() * 2),
      memoryMib: 256 * (1 + Math.floor(rand() * 8)),
      diskGib: 0,
      constraints:
        x < 0.1
          ? [{ key: 'gpu', op: 'exists' }]
          : x > 0.9
            ? [{ key: 'topology.zone', op: '==', value: `z${i % 12}` }]
            : [],
      strategy: i % 2 === 0 ? 'binpack' : 'spread',
    };
    const y = rand();
    let anti: string | undefined;
    if (y < 0.2) {
      anti = `anti${i % 1000}`;
      r.groups = [{ id: anti, policy: 'anti-affinity', strength: 'hard', level: 'physical-host' }];
    } else if (y < 0.4 && r.constraints.length === 0) {
      // (A spread over zones pinned to one zone by a constraint could only be refused.)
      r.spread = { groupId: `spread${i % 100}`, level: 'zone', maxSkew: 1 };
    }
    const a = performance.now();
    const o = s.place(r);
    if (o.ok) s.commit(o.hostId, r);
    lat[i] = performance.now() - a;
    if (!o.ok) {
      refused++;
      continue;
    }
    placed++;
    if (anti) {
      // The rule checked from outside: no two members of a group on one server.
      const phys = physicalOf.get(o.hostId)!;
      const set = antiMembers.get(anti) ?? new Set<string>();
      antiMembers.set(anti, set);
      if (set.has(phys)) violations++;
      set.add(phys);
    }
    if ((i & 8191) === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  const seconds = (performance.now() - start) / 1000;
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  const sorted = Array.from(lat).sort((p, q) => p - q);
  return {
    hosts: total,
    placed,
    refused,
    perSecond: placements / seconds,
    p50us: sorted[Math.floor(sorted.length * 0.5)]! * 1000,
    p99us: sorted[Math.floor(sorted.length * 0.99)]! * 1000,
    buildMs,
    peakRssMib: peakRss / 2 ** 20,
    heapMib: process.memoryUsage().heapUsed / 2 ** 20,
    violations,
  };
}

if (flags.size) {
  process.stdout.write(JSON.stringify(runSize(Number(flags.size))));
} else {
  const load = os.loadavg();
  const results: Result[] = [];
  for (const size of [1000, 10_000, 50_000]) {
    const child = spawnSync(
      process.execPath,
      [import.meta.filename, '--size', String(size), '--placements', String(placements)],
      { encoding: 'utf8', maxBuffer: 1 << 20 },
    );
    if (child.status !== 0) throw new Error(`size ${size} failed: ${child.stderr}`);
    const r = JSON.parse(child.stdout) as Result;
    results.push(r);
    console.error(
      `${size} hosts: ${Math.round(r.perSecond)} placements/s, p50 ${r.p50us.toFixed(1)} µs, p99 ${r.p99us.toFixed(1)} µs, peak RSS ${Math.round(r.peakRssMib)} MiB`,
    );
  }
  const f = (n: number) => Math.round(n).toLocaleString('en');
  const lines = [
    '| hosts | placements | placed | refused | placements/s | p50 µs | p99 µs | snapshot build ms | peak RSS MiB | anti-affinity violations |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      r =>
        `| ${f(r.hosts)} | ${f(placements)} | ${f(r.placed)} | ${f(r.refused)} | ${f(r.perSecond)} | ${r.p50us.toFixed(1)} | ${r.p99us.toFixed(1)} | ${f(r.buildMs)} | ${f(r.peakRssMib)} | ${r.violations} |`,
    ),
  ];
  const at10k = results.find(r => r.hosts === 10_000)!;
  const at50k = results.find(r => r.hosts === 50_000)!;
  const verdicts = [
    `Target >= 10,000 placements/s at 10,000 hosts: ${at10k.perSecond >= 10_000 ? 'met' : 'not met'} (${f(at10k.perSecond)}).`,
    `Target under 1 GiB at 50,000 hosts: ${at50k.peakRssMib < 1024 ? 'met' : 'not met'} (${f(at50k.peakRssMib)} MiB peak RSS).`,
  ];
  console.log(lines.join('\n'));
  console.log(verdicts.join('\n'));
  if (flags.record) {
    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    appendFileSync(
      join(import.meta.dirname, 'RESULTS.md'),
      [
        '',
        `## ${new Date().toISOString()}: bench/scheduler.ts`,
        '',
        `Machine: ${cpu}, ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average before the run ${load.map(l => l.toFixed(2)).join(' ')}.`,
        `Command: \`node bench/scheduler.ts --placements ${placements} --record\` (the placer's Scheduler on simulated clusters, one process per size; 3 regions, 12 zones, racks of 20 servers, a VM host nested on every third server; 70% containers, 30% VMs; 20% in hard physical-host anti-affinity groups, 20% in zone spread groups, 20% with label constraints; half bin-pack, half spread; a fixed seed).`,
        '',
        ...lines,
        '',
        ...verdicts,
        '',
      ].join('\n'),
    );
    console.error('recorded in bench/RESULTS.md');
  }
}
