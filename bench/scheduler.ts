// The scheduler at scale, on simulated clusters: the placer's own snapshot
// build (src/services/placement.ts `snapshotOf`, from host rows, usage and
// group members as the store returns them) and the same Scheduler, fed
// synthetic rows instead of SQL (hosts exist only as records, as with a
// simulated driver), so what is measured is the placer's CPU per pass.
//
//   node bench/scheduler.ts [--placements 100000] [--sizes 1000,10000,50000] [--record]
//
// Each size runs in its own process (clean heap, honest peak memory):
// 1,000, 10,000 and 50,000 hosts in 3 regions x 4 zones x racks of 20 servers,
// VM hosts nested on a third of the servers; 100,000 placements mixing kinds
// (containers 70%, VMs 30%), label constraints (zone ==, gpu exists), spread
// groups over zones (max skew 1) and hard anti-affinity groups at the
// physical-host level (which must see through the nested VM hosts).
//
// The same workload is placed three ways, each on a fresh cluster:
// - per pass: passes of 500 (the placer's BATCH), each building its snapshot
//   from the rows as they stand (every earlier placement in the usage and the
//   group members), then placing and committing; the verdict reads from this.
// - reused: as the placer does while only instances change: a pass builds a
//   snapshot only when the last was built a second ago or more (its maximum
//   age), else reuses it with its placements in it. This assumes nothing but
//   creates happen (no host, group or project event, no deletion: those drop
//   the snapshot) and passes run back to back.
// - place + commit only: one build before the clock starts; the scheduler's
//   own cost, the figure this benchmark used to report.
// The SQL that reads the rows is not counted in any (bench/fleet.ts measures
// the whole path through the store).
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Request } from '../src/scheduler/scheduler.ts';
import { snapshotOf } from '../src/services/placement.ts';
import type { ClusterRows } from '../src/store/placement.ts';
import type { HostRow } from '../src/store/schema.ts';
import { loadNote, machineLine, recordSection } from './record.ts';

const { values: flags } = parseArgs({
  options: {
    placements: { type: 'string', default: '100000' },
    sizes: { type: 'string', default: '1000,10000,50000' },
    size: { type: 'string' },
    record: { type: 'boolean', default: false },
  },
});
const placements = Number(flags.placements);
const sizes = flags.sizes.split(',').map(Number);

/** The placer's largest batch of instances per pass (src/controllers/placer.ts). */
const BATCH = 500;
/** The placer's longest reuse of a snapshot (src/controllers/placer.ts). */
const SNAPSHOT_MAX_AGE_MS = 1000;

type Mode = 'pass' | 'reused' | 'once';

interface Run {
  placed: number;
  refused: number;
  perSecond: number;
  builds: number;
  buildMs: number;
  p50us: number;
  p99us: number;
  violations: number;
}

interface Result {
  hosts: number;
  runs: Record<Mode, Run>;
  peakRssMib: number;
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

function hostRow(
  id: string,
  parent: string | null,
  topology: { region: string; zone: string; rack: string },
  drivers: string[],
  labels: Record<string, string>,
  r: { vcpus: number; memoryMib: number; diskGib: number },
): HostRow {
  return {
    id,
    name: id,
    kind: parent ? 'vm' : 'bare-metal',
    parent_instance_id: parent,
    ...topology,
    labels: JSON.stringify(labels),
    capacity_vcpus: r.vcpus,
    capacity_memory_mib: r.memoryMib,
    capacity_disk_gib: r.diskGib,
    allocatable_vcpus: r.vcpus,
    allocatable_memory_mib: r.memoryMib,
    allocatable_disk_gib: r.diskGib,
    drivers: JSON.stringify(drivers),
    state: 'ready',
    pool: null,
    info: '{}',
    last_heartbeat_at: null,
    created_at: '',
    updated_at: '',
  };
}

/** The rows the placer would read of an empty cluster; usage and members grow as placements commit. */
function cluster(total: number): { rows: ClusterRows; physicalOf: Map<string, string> } {
  const hosts: HostRow[] = [];
  const parentHost = new Map<string, string | null>();
  const physicalOf = new Map<string, string>();
  // A third of the servers carry one VM host each: servers + nested = total.
  const servers = Math.ceil((total * 3) / 4);
  for (let i = 0; i < servers && hosts.length < total; i++) {
    const zone = i % 12;
    const id = `p${i}`;
    hosts.push(
      hostRow(
        id,
        null,
        { region: `r${zone % 3}`, zone: `z${zone}`, rack: `k${Math.floor(i / 20)}` },
        ['container', 'vm'],
        i % 10 === 0 ? { gpu: 'a100' } : {},
        { vcpus: 128, memoryMib: 512 * 1024, diskGib: 4000 },
      ),
    );
    physicalOf.set(id, id);
    if (i % 3 === 0 && hosts.length < total) {
      const vm = `v${i}`;
      // The nested host runs in an instance placed on its server.
      hosts.push(
        hostRow(
          vm,
          `i-${vm}`,
          { region: '', zone: '', rack: '' },
          ['container'],
          {},
          {
            vcpus: 16,
            memoryMib: 64 * 1024,
            diskGib: 200,
          },
        ),
      );
      parentHost.set(`i-${vm}`, id);
      physicalOf.set(vm, id);
    }
  }
  return {
    rows: { hosts, usage: new Map(), parentHost, members: [], groups: new Map(), strategies: new Map() },
    physicalOf,
  };
}

/** The seeded workload: the same requests, in the same order, for every mode. */
function workload(total: number): { r: Request; anti?: string }[] {
  const rand = rng(total);
  const out: { r: Request; anti?: string }[] = [];
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
    out.push(anti ? { r, anti } : { r });
  }
  return out;
}

let peakRss = 0;
const sampleRss = () => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
};

function runMode(total: number, mode: Mode): Run {
  const { rows, physicalOf } = cluster(total);
  const work = workload(total);
  const lat = new Float64Array(placements);
  const antiMembers = new Map<string, Set<string>>();
  let placed = 0;
  let refused = 0;
  let violations = 0;
  let builds = 0;
  let buildTotal = 0;
  let snap = snapshotOf(rows);
  // The counted clock (builds and place + commit) decides a snapshot's age.
  let counted = 0;
  let builtAt = Number.NEGATIVE_INFINITY;
  for (let start = 0; start < placements; start += BATCH) {
    if (mode === 'pass' || (mode === 'reused' && counted - builtAt >= SNAPSHOT_MAX_AGE_MS)) {
      const t = performance.now();
      snap = snapshotOf(rows);
      const ms = performance.now() - t;
      builtAt = counted;
      counted += ms;
      builds++;
      buildTotal += ms;
    }
    const end = Math.min(placements, start + BATCH);
    for (let i = start; i < end; i++) {
      const { r, anti } = work[i]!;
      const a = performance.now();
      const o = snap.scheduler.place(r);
      if (o.ok) snap.scheduler.commit(o.hostId, r);
      lat[i] = performance.now() - a;
      counted += lat[i]!;
      if (!o.ok) {
        refused++;
        continue;
      }
      placed++;
      // What the store holds after the commit: the next build reads it.
      const u = rows.usage.get(o.hostId) ?? { vcpus: 0, mem: 0, disk: 0 };
      rows.usage.set(o.hostId, { vcpus: u.vcpus + r.vcpus, mem: u.mem + r.memoryMib, disk: u.disk + r.diskGib });
      for (const g of r.groups ?? []) rows.members.push({ group_id: g.id, host_id: o.hostId });
      if (r.spread) rows.members.push({ group_id: r.spread.groupId, host_id: o.hostId });
      if (anti) {
        // The rule checked from outside: no two members of a group on one server.
        const phys = physicalOf.get(o.hostId)!;
        const set = antiMembers.get(anti) ?? new Set<string>();
        antiMembers.set(anti, set);
        if (set.has(phys)) violations++;
        set.add(phys);
      }
    }
    // The bookkeeping above stands in for the store's writes: not counted.
    sampleRss();
  }
  const sorted = Array.from(lat).sort((p, q) => p - q);
  return {
    placed,
    refused,
    // "once" built before the clock started: only place + commit are in it.
    perSecond: placements / (counted / 1000),
    builds: mode === 'once' ? 0 : builds,
    buildMs: builds > 0 ? buildTotal / builds : 0,
    p50us: sorted[Math.floor(sorted.length * 0.5)]! * 1000,
    p99us: sorted[Math.floor(sorted.length * 0.99)]! * 1000,
    violations,
  };
}

function runSize(total: number): Result {
  sampleRss();
  const runs = {} as Record<Mode, Run>;
  for (const mode of ['pass', 'reused', 'once'] as const) runs[mode] = runMode(total, mode);
  sampleRss();
  return { hosts: total, runs, peakRssMib: peakRss / 2 ** 20 };
}

if (flags.size) {
  process.stdout.write(JSON.stringify(runSize(Number(flags.size))));
} else {
  const load = os.loadavg();
  const results: Result[] = [];
  for (const size of sizes) {
    const child = spawnSync(
      process.execPath,
      [import.meta.filename, '--size', String(size), '--placements', String(placements)],
      { encoding: 'utf8', maxBuffer: 1 << 20 },
    );
    if (child.status !== 0) throw new Error(`size ${size} failed: ${child.stderr}`);
    const r = JSON.parse(child.stdout) as Result;
    results.push(r);
    console.error(
      `${size} hosts: ${Math.round(r.runs.pass.perSecond)} placements/s with a build per pass, ${Math.round(r.runs.reused.perSecond)} reusing it, ${Math.round(r.runs.once.perSecond)} place + commit only; build ${r.runs.pass.buildMs.toFixed(1)} ms; peak RSS ${Math.round(r.peakRssMib)} MiB`,
    );
  }
  const f = (n: number) => Math.round(n).toLocaleString('en');
  const lines = [
    `| hosts | placements | placed | refused | snapshot build ms | placements/s, a build per pass of ${BATCH} | placements/s, snapshot reused up to ${SNAPSHOT_MAX_AGE_MS / 1000} s (builds) | placements/s, place + commit only | p50 µs | p99 µs | peak RSS MiB | anti-affinity violations |`,
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(({ hosts, runs: { pass, reused, once }, peakRssMib }) => {
      const violations = pass.violations + reused.violations + once.violations;
      return `| ${f(hosts)} | ${f(placements)} | ${f(pass.placed)} | ${f(pass.refused)} | ${pass.buildMs.toFixed(1)} | ${f(pass.perSecond)} | ${f(reused.perSecond)} (${reused.builds}) | ${f(once.perSecond)} | ${once.p50us.toFixed(1)} | ${once.p99us.toFixed(1)} | ${f(peakRssMib)} | ${violations} |`;
    }),
  ];
  const at10k = results.find(r => r.hosts === 10_000);
  const at50k = results.find(r => r.hosts === 50_000);
  const verdicts = [
    at10k
      ? `Target >= 10,000 placements/s at 10,000 hosts, a snapshot built per pass of ${BATCH}: ${at10k.runs.pass.perSecond >= 10_000 ? 'met' : 'not met'} (${f(at10k.runs.pass.perSecond)}; ${f(at10k.runs.reused.perSecond)} with the snapshot reused as the placer does while only creates happen).`
      : 'Target >= 10,000 placements/s at 10,000 hosts: not measured (size not run).',
    at50k
      ? `Target under 1 GiB at 50,000 hosts: ${at50k.peakRssMib < 1024 ? 'met' : 'not met'} (${f(at50k.peakRssMib)} MiB peak RSS).`
      : 'Target under 1 GiB at 50,000 hosts: not measured (size not run).',
  ];
  console.log(lines.join('\n'));
  console.log(verdicts.join('\n'));
  if (flags.record) {
    recordSection('scheduler.ts', [
      machineLine(`Node ${process.version}`, loadNote(load)),
      `Command: \`node bench/scheduler.ts --placements ${placements} --sizes ${sizes.join(',')} --record\` (the placer's snapshot build and Scheduler on simulated host rows, no SQL, one process per size; 3 regions, 12 zones, racks of 20 servers, a VM host nested on every third server; 70% containers, 30% VMs; 20% in hard physical-host anti-affinity groups, 20% in zone spread groups, 20% with label constraints; half bin-pack, half spread; a fixed seed; placed three ways on a fresh cluster each: passes of ${BATCH} each building the snapshot from the rows as they stand, the snapshot reused while under ${SNAPSHOT_MAX_AGE_MS / 1000} s old on the counted clock (assuming only creates: no host, group or project event and no deletion; an upper bound, since a real pass's SQL leaves fewer placements per build), and place + commit only after one uncounted build).`,
      '',
      ...lines,
      '',
      ...verdicts,
      '',
    ]);
    console.error('recorded in bench/RESULTS.md');
  }
}
