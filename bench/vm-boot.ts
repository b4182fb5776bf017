// VM boot latency: Strata against the same QEMU command line started by hand.
//
//   node bench/vm-boot.ts [--runs 5] [--record]
//
// strata   POST /v1/instances (kind vm, the busybox image, a command printing
//          a marker) to a real server and agent (child processes)
// by hand  the very command line the agent ran (read from /proc of its QEMU),
//          on a fresh overlay and a copy of its config disk
// Both are timed to the marker line appearing in the serial console log,
// watched the same way (polled every 2 ms). Round-robin, one warm-up each.
// The accelerator (KVM, or TCG where KVM cannot run guests) is the agent's.
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createTap, deleteTap } from '../src/drivers/vm/network.ts';
import {
  client,
  killProcessesMentioning,
  removeDir,
  startServerProcess,
  strataBin,
  tempDir,
  until,
} from '../test/helpers.ts';

const { values: flags } = parseArgs({
  options: { runs: { type: 'string', default: '5' }, record: { type: 'boolean', default: false } },
});
const runs = Number(flags.runs);
const MARKER = 'vm-boot-marker';
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

async function waitForMarker(file: string, timeoutMs = 120_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (existsSync(file) && readFileSync(file, 'utf8').includes(MARKER)) return performance.now();
    await sleep(2);
  }
  throw new Error(`no marker in ${file}`);
}

const dir = tempDir('strata-bench-vm-');
const agentData = join(dir, 'agent');
const srv = await startServerProcess(dir);
const admin = client(srv.url, srv.adminToken);
const joinToken = (await admin.post('/v1/join-tokens', {})).body.secret as string;
const agent = spawn(
  strataBin,
  [
    'agent',
    '--server',
    srv.url,
    '--data',
    agentData,
    '--name',
    'bench-vm',
    '--log-level',
    'warn',
    '--join-token',
    joinToken,
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
await until('the agent offers VMs', async () =>
  (await admin.get('/v1/hosts')).body.items.find(
    (h: { drivers: string[]; state: string }) => h.state === 'ready' && h.drivers.includes('vm'),
  ),
);

let accelerator = '';
let template: string[] | undefined;
const ids: string[] = [];

async function strata(): Promise<number> {
  const t0 = performance.now();
  const res = await admin.post('/v1/instances', {
    project: 'default',
    kind: 'vm',
    image: 'busybox',
    command: ['sh', '-c', `echo ${MARKER}; sleep 600`],
    resources: { vcpus: 1, memoryMib: 256, diskGib: 1 },
  });
  if (res.status !== 201) throw new Error(`create answered ${res.status}: ${JSON.stringify(res.body)}`);
  const id = res.body.id as string;
  ids.push(id);
  const t1 = await waitForMarker(join(agentData, 'vm', id, 'serial.log'));
  const i = await until('running', async () => {
    const x = (await admin.get(`/v1/instances/${id}`)).body;
    return x.state === 'running' && x.observed.accelerator ? x : undefined;
  });
  accelerator = i.observed.accelerator;
  // The agent's QEMU command line, for the hand-started twin.
  const pid = Number(readFileSync(join(agentData, 'vm', id, 'qemu.pid'), 'utf8'));
  if (!template) {
    template = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map(a => a.replaceAll(join(agentData, 'vm', id), '@DIR@'));
    copyFileSync(join(agentData, 'vm', id, 'config.img'), join(dir, 'config.img'));
  }
  return t1 - t0;
}

let handRun = 0;
async function byHand(): Promise<number> {
  if (!template) throw new Error('no command line to copy yet');
  const d = join(dir, `hand-${++handRun}`);
  mkdirSync(d);
  // What the agent prepares before QEMU starts (not timed): a fresh overlay and the config disk.
  const base = join('/var/lib/strata-host/vm/images', 'busybox.qcow2');
  execFileSync('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-b',
    base,
    '-F',
    'qcow2',
    join(d, 'root.qcow2'),
    String(1024 ** 3),
  ]);
  copyFileSync(join(dir, 'config.img'), join(d, 'config.img'));
  // Its own tap on the same bridge (the agent's belongs to its instance).
  const tap = `stapbench${handRun % 100}`;
  await createTap(tap, 'strata0');
  const args = template.map(a => a.replaceAll('@DIR@', d).replace(/ifname=stap[0-9a-f]+/, `ifname=${tap}`));
  const t0 = performance.now();
  const child = spawn(args[0]!, args.slice(1), { cwd: d, stdio: 'ignore', detached: true });
  const t1 = await waitForMarker(join(d, 'serial.log'));
  child.kill('SIGKILL');
  await new Promise(r => child.once('exit', r));
  await deleteTap(tap);
  rmSync(d, { recursive: true, force: true });
  return t1 - t0;
}

/** Deletes Strata's VMs, and waits until their QEMUs are gone, so no guest runs during the next timing. */
async function cleanup(): Promise<void> {
  for (const id of ids.splice(0)) {
    await admin.delete(`/v1/instances/${id}`);
    await until('deleted', async () => ((await admin.get(`/v1/instances/${id}`)).status === 404 ? true : undefined));
  }
}

const paths = [
  { name: 'Strata API (POST /v1/instances, kind vm)', run: strata, ms: [] as number[] },
  { name: 'the same QEMU command line, by hand', run: byHand, ms: [] as number[] },
];
const load = os.loadavg();
for (const p of paths) {
  await p.run(); // warm-up
  await cleanup();
}
for (let i = 0; i < runs; i++) {
  for (const p of paths) {
    p.ms.push(await p.run());
    await cleanup();
    await sleep(300);
  }
  process.stderr.write(`\rround ${i + 1}/${runs}`);
}
process.stderr.write('\n');

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const f = (n: number) => n.toFixed(0);
const lines = [
  `| path | runs | median ms | min ms | max ms | accelerator |`,
  '|---|---:|---:|---:|---:|---|',
  ...paths.map(
    p =>
      `| ${p.name} | ${p.ms.length} | ${f(median(p.ms))} | ${f(Math.min(...p.ms))} | ${f(Math.max(...p.ms))} | ${accelerator} |`,
  ),
];
const overhead = median(paths[0]!.ms) - median(paths[1]!.ms);
const verdict = `Strata overhead against QEMU by hand: median ${overhead >= 0 ? '+' : ''}${f(overhead)} ms (target <= 100 ms: ${overhead <= 100 ? 'met' : 'not met'}).`;
console.log(lines.join('\n'));
console.log(verdict);

if (flags.record) {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const qemu = execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  appendFileSync(
    join(import.meta.dirname, 'RESULTS.md'),
    [
      '',
      `## ${new Date().toISOString()}: bench/vm-boot.ts`,
      '',
      `Machine: ${cpu}, ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${qemu}, accelerator ${accelerator}, load average before the run ${load.map(l => l.toFixed(2)).join(' ')}.`,
      `Command: \`node bench/vm-boot.ts --runs ${runs} --record\` (microvm, 1 vCPU, 256 MiB, the busybox image, Strata's kernel and initramfs; time from the request, or from QEMU's spawn, to the marker line in the serial log; one warm-up each, round-robin).`,
      '',
      ...lines,
      '',
      verdict,
      '',
    ].join('\n'),
  );
  console.error('recorded in bench/RESULTS.md');
}

await cleanup();
agent.kill('SIGKILL');
killProcessesMentioning(agentData);
await srv.stop();
removeDir(dir);
