// Bare-metal deploy latency: `strata run --kind metal ... --wait` until the
// node's own OS is up, step by step, against the same machine booting its
// written disk directly and the image written on the host, in one run.
//
//   node bench/metal-deploy.ts [--runs 5] [--paths ipmi,redfish] [--record]
//
// The rig (src/rig/metal/) gives two emulated servers on bridge stmetal4: one
// behind OpenIPMI's simulator (network boot of the deploy ramdisk), one behind
// the Redfish emulator (the ramdisk's ISO as virtual media). A server and an
// agent conducting them on 172.30.254.1/24 (boot server port 8094) run as
// child processes; the nodes are enrolled, inspected and provided before any
// timing. Each run is the CLI a user types, timed from its spawn to its exit:
//   strata run --kind metal -c bmc==ipmi --wait IMAGE -- true
// The steps come from sources outside Strata wherever the machine shows them:
// its QEMU process (start time from /proc, exit when its pidfile's process
// is gone, checked every 20 ms) and its serial console as QEMU writes it to a
// file (lines printed by the deploy ramdisk and by the deployed OS's init,
// timed when they appear, watched with fs.watch); the conductor's log line
// for the deploy (phase durations) gives what happens inside Strata before the
// first power on. The command `true` ends at once after "strata-metal: ready":
// the node powers itself off cleanly, its disk is copied (untimed) for the
// direct boot, and the instance is deleted (the node is undeployed and cleaned
// before the next run, untimed).
// Baselines, interleaved with the runs: the very QEMU command line the node's
// BMC started for its boot from disk (read from /proc), by hand, on a copy of
// the disk the deploy wrote, to the same "strata-metal: ready" line; and the
// image itself streamed over HTTP into a file on the host with curl | dd (a
// floor for the write: no emulated machine in the way).
// Overhead beyond the two boots and the write = total - (ramdisk boot, from
// power on to its call-back + write, from the ramdisk's "writing the image"
// to its "done" + boot from disk, from power on to "strata-metal: ready").
// One warm-up deploy per path first (the first one builds the disk image from
// the OCI image: reported apart as the cold build), then --runs rounds, each
// path once per round, each followed by its direct boot.
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  createReadStream,
  existsSync,
  type FSWatcher,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  watch,
} from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Machine } from '../src/rig/metal/machine.ts';
import { type Rig, type RigNode, startRig } from '../src/rig/metal/rig.ts';
import {
  client,
  removeDir,
  spawnAgentProcess,
  startServerProcess,
  strataBin,
  tempDir,
  TEST_IMAGE,
  until,
} from '../test/helpers.ts';
import { cliContextEnv } from './cli-env.ts';
import { loadNote, machineLine, recordSection } from './record.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    paths: { type: 'string', default: 'ipmi,redfish' },
    record: { type: 'boolean', default: false },
  },
});
const runs = Number(flags.runs);
const paths = flags.paths.split(',').filter(p => p === 'ipmi' || p === 'redfish') as ('ipmi' | 'redfish')[];
if (!(runs > 0) || paths.length === 0) throw new Error('usage: --runs N (N >= 1) --paths ipmi,redfish');

const BRIDGE = 'stmetal4';
const CIDR = '172.30.254.1/24';
const BOOT_PORT = 8094;
const TARGET_S = 10;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** When process `pid` started, in Date.now() terms (the kernel keeps it in ticks since boot). */
function processStart(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  return Date.now() - (uptime - ticks / CLK_TCK) * 1000;
}

/**
 * A serial log as QEMU appends it: the first time each pattern appears after
 * the offset it was opened at (the file's directory watched, what was
 * appended read on each event, with a check every 50 ms in case one is missed).
 */
class SerialTail {
  readonly seen = new Map<string, number>();
  private text = '';
  private offset: number;
  private readonly watcher: FSWatcher;
  private readonly timer: NodeJS.Timeout;
  private readonly waiters = new Set<() => void>();
  private readonly file: string;
  private readonly patterns: Record<string, RegExp>;

  constructor(file: string, patterns: Record<string, RegExp>, dir: string) {
    this.file = file;
    this.patterns = patterns;
    this.offset = existsSync(file) ? statSync(file).size : 0;
    this.watcher = watch(dir, () => this.check());
    this.timer = setInterval(() => this.check(), 50);
  }

  private check(): void {
    const at = Date.now();
    if (!existsSync(this.file)) return;
    const fd = openSync(this.file, 'r');
    try {
      const buf = Buffer.alloc(256 * 1024);
      for (
        let n = readSync(fd, buf, 0, buf.length, this.offset);
        n > 0;
        n = readSync(fd, buf, 0, buf.length, this.offset)
      ) {
        this.offset += n;
        this.text += buf.toString('latin1', 0, n);
      }
    } finally {
      closeSync(fd);
    }
    for (const [name, re] of Object.entries(this.patterns))
      if (!this.seen.has(name) && re.test(this.text)) this.seen.set(name, at);
    for (const w of this.waiters) w();
  }

  /** The time `name` appeared, waiting for it up to `ms`. */
  async when(name: string, ms = 600_000): Promise<number> {
    const end = Date.now() + ms;
    while (!this.seen.has(name)) {
      if (Date.now() > end) throw new Error(`no ${name} line in ${this.file} within ${ms / 1000} s`);
      await new Promise<void>(r => {
        const w = () => {
          this.waiters.delete(w);
          r();
        };
        this.waiters.add(w);
        setTimeout(w, 200);
      });
    }
    return this.seen.get(name)!;
  }

  close(): void {
    this.watcher.close();
    clearInterval(this.timer);
  }
}

/** A machine's power as its QEMU shows it: each start (with its command line) and each end, checked every 20 ms. */
class PowerWatch {
  readonly ons: { at: number; pid: number; argv: string[] }[] = [];
  readonly offs: number[] = [];
  private current: number | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly machine: Machine;

  constructor(dir: string) {
    this.machine = Machine.load(dir);
    this.current = this.machine.pid();
    this.timer = setInterval(() => this.check(), 20);
  }

  private check(): void {
    const pid = this.machine.pid();
    if (pid === this.current) return;
    if (this.current !== undefined) this.offs.push(Date.now());
    this.current = pid;
    if (pid === undefined) return;
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      this.ons.push({ at: processStart(pid), pid, argv });
    } catch {
      // gone already: its end is seen on the next check
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}

const MARKERS = {
  ramdiskInit: /strata-ramdisk: start/,
  hello: /strata-ramdisk: hello/,
  writing: /strata-ramdisk: writing the image/,
  done: /strata-ramdisk: done: ok=true/,
  failed: /strata-ramdisk: done: ok=false/,
  diskFirmware: /Booting from Hard Disk/,
  ready: /strata-metal: ready/,
};

interface LogRecord {
  time: number;
  msg: string;
  node?: string;
  step?: string;
  instance?: string;
  ms?: number;
  [phase: string]: unknown;
}

// ---- the rig, a server and a conducting agent ----
const load = os.loadavg();
const dir = tempDir('strata-bench-metal-');
const children: number[] = [];
let rig: Rig | undefined;
let agentPid: number | undefined;
const log: LogRecord[] = [];

/** Every process below `pid` (its children, theirs...), from /proc. */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      parent.set(Number(p), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  const out: number[] = [];
  const walk = (q: number) => {
    for (const [c, pp] of parent) if (pp === q) out.push(c), walk(c);
  };
  walk(pid);
  return out;
}

async function cleanup(): Promise<void> {
  if (agentPid !== undefined) {
    const below = descendants(agentPid);
    try {
      process.kill(agentPid, 'SIGTERM');
    } catch {}
    for (let i = 0; i < 50 && existsSync(`/proc/${agentPid}`); i++) await sleep(100);
    for (const p of [agentPid, ...below])
      try {
        process.kill(p, 'SIGKILL');
      } catch {}
  }
  for (const p of children)
    try {
      process.kill(p, 'SIGKILL');
    } catch {}
  await rig?.stop();
}

try {
  await main();
} finally {
  await cleanup();
  removeDir(dir);
}

async function main(): Promise<void> {
  rig = await startRig({
    dir: join(dir, 'rig'),
    bridge: BRIDGE,
    nodes: [
      { name: 'bench-ipmi', bmc: 'ipmi', username: 'admin', password: 'ipmi-pass' },
      { name: 'bench-redfish', bmc: 'redfish', username: 'admin', password: 'redfish-pass' },
    ].filter(n => paths.includes(n.bmc as 'ipmi' | 'redfish')) as Parameters<typeof startRig>[0]['nodes'],
  });
  mkdirSync(join(dir, 'server'));
  const srv = await startServerProcess(join(dir, 'server'));
  children.push(srv.child.pid!);
  const admin = client(srv.url, srv.adminToken);
  const joinToken = (await admin.post('/v1/join-tokens', {})).body.secret as string;
  const agentData = join(dir, 'agent');
  const agent = spawnAgentProcess({
    server: srv.url,
    joinToken,
    dataDir: agentData,
    name: 'bench-metal',
    extra: ['--log-level', 'info', '--metal-bridge', BRIDGE, '--metal-cidr', CIDR, '--metal-port', String(BOOT_PORT)],
    stdout: 'pipe',
  });
  agentPid = agent.pid;
  let partial = '';
  agent.stdout!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      try {
        const r = JSON.parse(l) as LogRecord;
        if (r.msg === 'node step done' || r.msg === 'node step failed') log.push(r);
      } catch {}
    }
  });
  await until(
    'the agent offers metal',
    async () =>
      (await admin.get('/v1/hosts')).body.items.find(
        (h: { drivers: string[]; state: string }) => h.state === 'ready' && h.drivers.includes('metal'),
      ),
    120_000,
  );

  // ---- enrol, inspect and provide the nodes (untimed; inspection is reported for reference) ----
  const node = async (name: string) =>
    (await admin.get(`/v1/nodes/${name}`)).body as { id: string; provisionState: string; lastError: string };
  const settles = (name: string, state: string) =>
    until(
      `node ${name} ${state}`,
      async () => {
        const n = await node(name);
        if (n.provisionState === state) return n;
        if (/failed$/.test(n.provisionState)) throw new Error(`node ${name} is ${n.provisionState}: ${n.lastError}`);
        return undefined;
      },
      900_000,
    );
  const act = async (name: string, action: string) => {
    const res = await admin.post(`/v1/nodes/${name}/provision`, { action });
    if (res.status !== 202) throw new Error(`${action} ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  };
  const rigNodes = new Map<string, RigNode>();
  for (const n of rig!.nodes) {
    const kind = n.name.replace('bench-', '');
    rigNodes.set(kind, n);
    const res = await admin.post('/v1/nodes', { name: n.name, bmc: n.bmcUrl, labels: { bmc: kind } });
    if (res.status !== 201) throw new Error(`enroll ${n.name}: ${res.status} ${JSON.stringify(res.body)}`);
  }
  // Untimed: a step the rig's BMC failed (a slow simulator on a loaded machine) is
  // tried again, up to twice, and said in the output.
  const redone: string[] = [];
  const prepare = async (action: string, state: string) => {
    for (const n of rig!.nodes) await act(n.name, action);
    for (const n of rig!.nodes)
      for (let attempt = 0; ; attempt++) {
        try {
          await settles(n.name, state);
          break;
        } catch (err) {
          if (attempt >= 2) throw err;
          redone.push(`${n.name} ${action}: ${(err as Error).message}`);
          await act(n.name, action);
        }
      }
  };
  await prepare('manage', 'manageable');
  await prepare('inspect', 'manageable');
  await prepare('provide', 'available');
  const inspected = new Map<string, number>();
  for (const r of log)
    if (r.step === 'inspecting' && r.msg === 'node step done') inspected.set(String(r.node), r.ms ?? 0);

  const env = cliContextEnv(dir, srv);

  let lastSeq = 0;
  const eventsSince = async (since: number) => {
    const out: { seq: number; at: string; type: string; resourceId: string; data: Record<string, unknown> }[] = [];
    for (let s = since; ; ) {
      const page = (await admin.get(`/v1/events?since=${s}&limit=1000`)).body as {
        items: typeof out;
        nextSince: number;
      };
      out.push(...page.items);
      s = page.nextSince;
      if (page.items.length < 1000) break;
    }
    return out;
  };
  lastSeq = (await eventsSince(0)).at(-1)?.seq ?? 0;

  const baseDisks = new Map<string, string>();
  const handArgv = new Map<string, string[]>();
  let runNo = 0;

  /** One deploy through the CLI, its steps, and the node made available again. */
  async function strataRun(kind: 'ipmi' | 'redfish'): Promise<Record<string, number>> {
    const rn = rigNodes.get(kind)!;
    const name = `bench-${kind}-${++runNo}`;
    const serial = new SerialTail(rn.serialLog, MARKERS, rn.dir);
    const power = new PowerWatch(rn.dir);
    try {
      const t0 = Date.now();
      const cli = spawn(
        strataBin,
        [
          'run',
          '--kind',
          'metal',
          '--name',
          name,
          '--cpus',
          '1',
          '--memory',
          '512',
          '--disk',
          '1',
          '-c',
          `bmc==${kind}`,
          '--wait',
          '-o',
          'json',
          TEST_IMAGE,
          '--',
          'true',
        ],
        { env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      cli.stdout.on('data', (d: Buffer) => out.push(d));
      cli.stderr.on('data', (d: Buffer) => err.push(d));
      const code = await new Promise<number | null>(r => cli.once('exit', r));
      const tEnd = Date.now();
      if (code !== 0) throw new Error(`strata run exited ${code}: ${Buffer.concat(err).toString()}`);
      const id = (JSON.parse(Buffer.concat(out).toString()) as { id: string }).id;
      if (serial.seen.has('failed')) throw new Error(`the ramdisk failed on ${rn.name}`);
      const ready = await serial.when('ready', 5_000);
      const deployed = await until(
        'the conductor logs the deploy',
        async () => log.find(r => r.instance === id && r.step === 'deploying'),
        10_000,
      );
      if (deployed.msg !== 'node step done') throw new Error(`deploy failed: ${String(deployed.message)}`);
      // The command has ended: the node powers itself off, its disk at rest.
      await until('the node powers itself off', async () => (power.offs.length >= 2 ? true : undefined), 120_000);
      if (!baseDisks.has(kind)) {
        const copy = join(dir, `base-${kind}.qcow2`);
        execFileSync('cp', ['--sparse=always', join(rn.dir, 'disk.qcow2'), copy]);
        baseDisks.set(kind, copy);
      }
      const disk = power.ons[1];
      if (!disk) throw new Error('the node was powered on only once');
      if (!handArgv.has(kind)) handArgv.set(kind, disk.argv);
      const events = (await eventsSince(lastSeq)).filter(e => e.resourceId === id);
      const starting = events.find(e => e.type === 'instance.state' && e.data.to === 'starting');
      const running = events.find(e => e.type === 'instance.state' && e.data.to === 'running');
      if (!starting || !running) throw new Error(`no starting/running events for ${id}`);
      const ph = (k: string) => Number(deployed[`${k}Ms`] ?? 0);
      const deployStart = deployed.time - (deployed.ms ?? 0);
      const on1 = power.ons[0]!.at;
      const off1 = power.offs[0]!;
      const on2 = disk.at;
      const m = (k: string) => serial.seen.get(k) ?? Number.NaN;
      const r: Record<string, number> = {
        total: tEnd - t0,
        handoff: deployStart - t0,
        placedToStarting: Date.parse(starting.at) - t0,
        image: ph('image'),
        configDrive: ph('configDrive'),
        arm: ph('arm'),
        powerOn1: on1 - (deployStart + ph('image') + ph('configDrive') + ph('arm')),
        firmware1: m('ramdiskInit') - on1,
        ramdiskInit: m('hello') - m('ramdiskInit'),
        callback: m('writing') - m('hello'),
        write: m('done') - m('writing'),
        powerOff: off1 - m('done'),
        powerOn2: on2 - off1,
        diskBoot: ready - on2,
        diskFirmware: m('diskFirmware') - on2,
        reported: tEnd - ready,
        runningAt: Date.parse(running.at) - ready,
        // the conductor's own view
        cRamdiskBoot: ph('ramdiskBoot'),
        cWrite: ph('deploy'),
        cPowerOff: ph('powerOff'),
        cDiskPowerOn: ph('diskPowerOn'),
        cDiskBoot: ph('diskBoot'),
      };
      r.ramdiskBoot = r.firmware1! + r.ramdiskInit!;
      r.boots = r.ramdiskBoot + r.write! + r.diskBoot!;
      r.overhead = r.total! - r.boots;
      // Make the node available again (untimed): delete, undeploy, clean.
      const del = await admin.delete(`/v1/instances/${id}`);
      if (del.status !== 202) throw new Error(`delete ${id}: ${del.status}`);
      await settles(rn.name, 'available');
      lastSeq = (await eventsSince(lastSeq)).at(-1)?.seq ?? lastSeq;
      return r;
    } finally {
      serial.close();
      power.close();
    }
  }

  /** The node's own boot from disk, by hand: its QEMU command line on a copy of the written disk. */
  async function byHand(kind: 'ipmi' | 'redfish'): Promise<number> {
    const rn = rigNodes.get(kind)!;
    const argv = handArgv.get(kind)!;
    if (Machine.load(rn.dir).power() !== 'off') throw new Error(`${rn.name} is on; its tap is not free`);
    const d = join(dir, `hand-${kind}`);
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d);
    execFileSync('cp', ['--sparse=always', baseDisks.get(kind)!, join(d, 'disk.qcow2')]);
    const port = await freeTcpPort();
    const args = argv.map(a => a.replaceAll(rn.dir, d).replace(/,port=\d+,/, `,port=${port},`));
    const serial = new SerialTail(join(d, 'serial.log'), { ready: MARKERS.ready }, d);
    let pid: number | undefined;
    try {
      const qemu = spawn(args[0]!, args.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
      const code = await new Promise<number | null>(r => qemu.once('exit', r));
      if (code !== 0) throw new Error(`QEMU by hand exited ${code}`);
      pid = Number(readFileSync(join(d, 'qemu.pid'), 'utf8').trim());
      const started = processStart(pid);
      return (await serial.when('ready', 300_000)) - started;
    } finally {
      serial.close();
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
        while (existsSync(`/proc/${pid}`) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')))
          await sleep(20);
      }
      rmSync(d, { recursive: true, force: true });
    }
  }

  /** The disk image over HTTP into a file on the host (curl | dd, fsync'd): the floor of the write. */
  async function hostWrite(): Promise<number> {
    const images = join(agentData, 'metal', 'images');
    const key = readdirSync(images).find(k => existsSync(join(images, k, 'disk.raw')));
    if (!key) throw new Error('no disk image in the conductor cache');
    const file = join(images, key, 'disk.raw');
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': statSync(file).size });
      createReadStream(file).pipe(res);
    });
    await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/disk.raw`;
    const target = join(dir, 'host-write.raw');
    try {
      const t0 = Date.now();
      // Not execFileSync: the server answering curl is in this process.
      const sh = spawn(
        'bash',
        [
          '-c',
          'set -o pipefail; curl -sf "$1" | dd of="$2" bs=1M iflag=fullblock conv=fsync 2>/dev/null',
          'bash',
          url,
          target,
        ],
        {
          stdio: 'ignore',
        },
      );
      const code = await new Promise<number | null>(r => sh.once('exit', r));
      if (code !== 0) throw new Error(`curl | dd exited ${code}`);
      return Date.now() - t0;
    } finally {
      server.close();
      rmSync(target, { force: true });
    }
  }

  // ---- warm-up (the first builds the disk image cold), then the rounds ----
  const warm: Record<string, Record<string, number>> = {};
  for (const k of paths) warm[k] = await strataRun(k);
  const results: Record<string, Record<string, number>[]> = {};
  const hand: Record<string, number[]> = {};
  const host: number[] = [];
  for (let i = 0; i < runs; i++) {
    for (const k of paths) {
      (results[k] ??= []).push(await strataRun(k));
      (hand[k] ??= []).push(await byHand(k));
    }
    host.push(await hostWrite());
    process.stderr.write(`\rround ${i + 1}/${runs}`);
  }
  process.stderr.write('\n');
  const loadAfter = os.loadavg();

  // ---- the table ----
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const mid = Math.floor(s.length / 2);
    return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  };
  const sec = (ms: number) => (ms / 1000).toFixed(2);
  const cell = (xs: number[]) =>
    xs.length === 1 ? sec(xs[0]!) : `${sec(median(xs))} (${sec(Math.min(...xs))}-${sec(Math.max(...xs))})`;
  const col = (k: string, field: string) => (results[k] ?? []).map(r => r[field]!);
  const label: Record<string, string> = { ipmi: 'IPMI, network boot', redfish: 'Redfish, virtual media' };
  const rows: [string, string, boolean][] = [
    [
      '`strata run` to the conductor starting the deploy (CLI, API, placement, node to deploying, hand-off)',
      'handoff',
      true,
    ],
    ['disk image from the OCI image (cached; cold below)', 'image', true],
    ['config drive built', 'configDrive', true],
    ['boot armed: power state, boot device (Redfish: ISO built, media inserted)', 'arm', true],
    ['power on: BMC call until the machine runs', 'powerOn1', true],
    ['network / virtual media boot: firmware until the ramdisk runs', 'firmware1', false],
    ['ramdisk: drivers, DHCP, hardware until its call-back', 'ramdiskInit', false],
    ['call-back to the write (task fetched)', 'callback', true],
    ['write: image and config drive (the ramdisk, "writing" to "done")', 'write', false],
    ['reboot: "done" until the machine is off', 'powerOff', true],
    ['reboot: off until on again (power on; the disk boot device is set during the write)', 'powerOn2', true],
    ['boot from disk: power on until "strata-metal: ready"', 'diskBoot', false],
    ['OS up until `strata run --wait` returns (console seen, running reported)', 'reported', true],
  ];
  const lines = [
    `| step | ${paths.map(k => `${label[k]}: median s (min-max)`).join(' | ')} | counted as |`,
    `|---|${paths.map(() => '---:').join('|')}|---|`,
    ...rows.map(
      ([what, field, over]) =>
        `| ${what} | ${paths.map(k => cell(col(k, field))).join(' | ')} | ${over ? 'overhead' : 'boot or write'} |`,
    ),
    `| **total: \`strata run --kind metal --wait\` until it returns** | ${paths.map(k => `**${cell(col(k, 'total'))}**`).join(' | ')} | |`,
    `| the two boots and the write (ramdisk boot + write + boot from disk) | ${paths.map(k => cell(col(k, 'boots'))).join(' | ')} | |`,
    `| **overhead beyond the two boots and the write** | ${paths.map(k => `**${cell(col(k, 'overhead'))}**`).join(' | ')} | target < ${TARGET_S} s |`,
    `| baseline: the same QEMU command line booting the written disk by hand, to "strata-metal: ready" | ${paths.map(k => cell(hand[k] ?? [])).join(' | ')} | |`,
    `| baseline: the image over HTTP into a file on the host (curl \\| dd, fsync) | ${paths.map(() => cell(host)).join(' | ')} | |`,
    `| the conductor's log: ramdisk boot / write / power off / disk power on / disk boot | ${paths
      .map(k =>
        ['cRamdiskBoot', 'cWrite', 'cPowerOff', 'cDiskPowerOn', 'cDiskBoot']
          .map(f => sec(median(col(k, f))))
          .join(' / '),
      )
      .join(' | ')} | |`,
  ];
  const first = paths[0]!;
  const imageBytes = (() => {
    const images = join(agentData, 'metal', 'images');
    const key = readdirSync(images).find(k => existsSync(join(images, k, 'disk.raw')));
    return key ? statSync(join(images, key, 'disk.raw')).size : 0;
  })();
  const verdicts = [
    ...paths.map(k => {
      const o = median(col(k, 'overhead'));
      const alt =
        median(col(k, 'total')) - median(col(k, 'ramdiskBoot')) - median(col(k, 'write')) - median(hand[k] ?? []);
      return `${label[k]}: overhead beyond the two boots and the write, median ${sec(o)} s over ${runs} runs (with the by-hand disk boot in place of the run's own: ${sec(alt)} s); target < ${TARGET_S} s: ${o < TARGET_S * 1000 ? 'met' : 'not met'}.`;
    }),
    `First deploy (warm-up, ${label[first]}), the disk image built cold from the OCI image: total ${sec(warm[first]!.total!)} s, of which the image ${sec(warm[first]!.image!)} s; cached in the runs: ${cell(col(first, 'image'))} s. The image is ${(imageBytes / 2 ** 20).toFixed(0)} MiB.`,
    ...(redone.length ? [`Enrolment steps redone after a failure: ${redone.join('; ')}.`] : []),
    `No inspection in a deploy (it is done once, at enrolment): the enrolment inspections took ${[...inspected].map(([n, ms]) => `${n} ${sec(ms)} s`).join(', ')} (the conductor's step).`,
  ];
  console.log(lines.join('\n'));
  console.log(verdicts.join('\n'));

  if (flags.record) {
    const qemuVersion = execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0];
    const debian = existsSync('/etc/debian_version')
      ? `Debian ${readFileSync('/etc/debian_version', 'utf8').trim()}`
      : os.type();
    const accel = /accel=(\w+)|-accel\W+(\w+)/.exec(handArgv.get(first)?.join(' ') ?? '');
    recordSection('metal-deploy.ts', [
      machineLine(
        debian,
        `Node ${process.version}`,
        `${qemuVersion}`,
        `accelerator ${accel?.[1] ?? accel?.[2] ?? 'unknown'}`,
        loadNote(load, loadAfter),
      ),
      `Command: \`node bench/metal-deploy.ts --runs ${runs} --paths ${paths.join(',')} --record\` (the rig's q35 machines, 1 vCPU, 1 GiB, a 2 GiB disk, behind ipmi_sim and the Redfish emulator; \`strata run --kind metal --wait ${TEST_IMAGE} -- true\` timed from its spawn to its exit; steps from the machine's QEMU process and its serial log, the conductor's phases from its log; one warm-up deploy per path, then ${runs} rounds, each path followed by its disk booted by hand; the host write once a round).`,
      '',
      ...lines,
      '',
      ...verdicts,
      '',
    ]);
    console.error('recorded in bench/RESULTS.md');
  }
}

async function freeTcpPort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>(r => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise(r => s.close(r));
  return port;
}
