// A rack of emulated bare-metal servers on this host, for tests and for
// `strata dev --with-metal N`: each node is a QEMU machine (machine.ts) on a
// tap of one Linux bridge, behind its own BMC: OpenIPMI's simulator (ipmi_sim,
// whose chassis program drives the machine) or the Redfish emulator. The rig
// makes the bridge when missing (up, no address: the conductor brings its own
// address and DHCP). Machines daemonize: they outlive the rig's process and any
// other; stop() powers them off.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { accelArgs, kvmBoots, type Accelerator } from '../../lib/qemu-accel.ts';
import { sleep } from '../../lib/time.ts';
import { Machine, macOf } from './machine.ts';
import { startRedfishEmulator, type RedfishEmulator } from './redfish-emulator.ts';
import { startSerialRelay, type SerialRelay } from './serial-relay.ts';

const run = promisify(execFile);

export interface RigNodeOptions {
  name: string;
  bmc: 'ipmi' | 'redfish';
  username: string;
  password: string;
  memoryMib?: number;
  diskGib?: number;
}

export interface RigOptions {
  dir: string;
  bridge: string;
  nodes: RigNodeOptions[];
  qemu?: string;
  /** Decided by trying a kernel under KVM when not given (see accelerator()). */
  accelerator?: Accelerator;
}

export interface RigNode {
  name: string;
  /** ipmi://USER:PASS@127.0.0.1:PORT or redfish+http://USER:PASS@127.0.0.1:PORT */
  bmcUrl: string;
  mac: string;
  serialLog: string;
  /** The machine's directory (machine.ts). */
  dir: string;
}

export interface Rig {
  nodes: RigNode[];
  stop(): Promise<void>;
}

/** A kernel to try KVM with: the VM driver's guest kernel (scripts/vm.sh), when the host has it. */
const PROBE_KERNEL = '/var/lib/strata-host/vm/kernel/vmlinux';
const NODE_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** What lan.conf can hold in a quoted string, within IPMI v2's limits. */
const IPMI_CREDENTIAL = /^[!#-[\]-~]+$/;

let probed: Promise<Accelerator> | undefined;

/** KVM when a kernel boots under it (to its panic for want of a root disk), else TCG; once per process. */
export function accelerator(qemu = 'qemu-system-x86_64'): Promise<Accelerator> {
  probed ??= (async () => {
    if (!existsSync(PROBE_KERNEL)) return 'tcg';
    const argv = ['-machine', 'q35', ...accelArgs('kvm'), '-m', '128M', '-nodefaults', '-no-user-config'];
    argv.push('-display', 'none', '-no-reboot', '-serial', 'stdio', '-kernel', PROBE_KERNEL);
    argv.push('-append', 'console=ttyS0 panic=-1');
    return (await kvmBoots(qemu, argv, 'VFS: Unable to mount root fs')) ? 'kvm' : 'tcg';
  })();
  return probed;
}

async function freeTcpPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise(r => server.close(r));
  return port;
}

/** Binds `port` (0: any) on 127.0.0.1 over UDP and lets it go: the port, or undefined when taken. */
async function udpPort(port: number): Promise<number | undefined> {
  const socket = createSocket('udp4');
  const bound = await new Promise<boolean>(r => {
    socket.once('error', () => r(false));
    socket.bind(port, '127.0.0.1', () => r(true));
  });
  const got = bound ? socket.address().port : undefined;
  if (bound) await new Promise<void>(r => socket.close(r));
  return got;
}

/**
 * A node keeps its BMC's port across rigs in the same directory (bmc-port),
 * as a real BMC keeps its address: the URL enrolled with a server stays right.
 */
const bmcPortFile = (dir: string) => join(dir, 'bmc-port');

function savedBmcPort(dir: string): number {
  try {
    const port = Number(readFileSync(bmcPortFile(dir), 'utf8').trim());
    return Number.isInteger(port) && port > 0 && port < 65536 ? port : 0;
  } catch {
    return 0;
  }
}

const ip = (...args: string[]) => run('ip', args);
const linkExists = (name: string) => existsSync(`/sys/class/net/${name}`);
const stderrOf = (e: unknown): string =>
  String((e as { stderr?: string }).stderr || (e instanceof Error ? e.message : e)).trim();

/** The programs a rig runs (Debian: qemu-system-x86, qemu-utils, openipmi, ipmitool, iproute2). */
export const RIG_COMMANDS = ['qemu-system-x86_64', 'qemu-img', 'ipmi_sim', 'ipmitool', 'ip'] as const;

function validate(o: RigOptions): void {
  if (!/^[\w./-]+$/.test(resolve(o.dir))) throw new Error('rig directory: only letters, digits, . _ - /');
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(o.bridge)) throw new Error(`bridge name ${o.bridge}: 1-15 of A-Z a-z 0-9 _ . -`);
  const names = new Set<string>();
  for (const n of o.nodes) {
    if (!NODE_NAME.test(n.name) || names.has(n.name)) throw new Error(`node name ${n.name}: unique, a-z 0-9 -`);
    names.add(n.name);
    const ipmi = n.bmc === 'ipmi';
    if (!IPMI_CREDENTIAL.test(n.username) || n.username.length > (ipmi ? 16 : 64))
      throw new Error(`node ${n.name}: the user name must be printable ASCII without space, " or \\, at most 16`);
    if (!IPMI_CREDENTIAL.test(n.password) || n.password.length > (ipmi ? 20 : 64))
      throw new Error(`node ${n.name}: the password must be printable ASCII without space, " or \\, at most 20`);
  }
}

/** The lan.conf of one node's simulated BMC: one admin user, SOL through the serial relay. */
function lanConf(name: string, port: number, serialPort: number, program: string, n: RigNodeOptions): string {
  const guid = createHash('sha256').update(name).digest('hex').slice(0, 32);
  const auths = 'none md2 md5 straight';
  return `name "${name}"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 ${port}
    priv_limit admin
    allowed_auths_callback ${auths}
    allowed_auths_user ${auths}
    allowed_auths_operator ${auths}
    allowed_auths_admin ${auths}
    guid ${guid}
  endlan
  chassis_control "${program} 0x20"
  sol "tcp:127.0.0.1:${serialPort}" 115200
  user 2 true "${n.username}" "${n.password}" admin 10 ${auths}
`;
}

const NODE_EMU = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`;

/** Waits until the simulator answers ipmitool (it binds its port some ms after starting). */
async function ipmiAnswers(port: number, n: RigNodeOptions, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  const args = ['-I', 'lanplus', '-C', '3', '-H', '127.0.0.1', '-p', String(port), '-U', n.username, '-E'];
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${n.name}: ipmi_sim exited (${child.exitCode}), see ipmi_sim.log`);
    try {
      await run('ipmitool', [...args, '-N', '1', '-R', '0', 'mc', 'info'], {
        env: { ...process.env, IPMI_PASSWORD: n.password },
      });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${n.name}: ipmi_sim does not answer on port ${port}`);
      await sleep(100);
    }
  }
}

/** OpenIPMI's simulator for one node, answering on 127.0.0.1:port once this resolves. */
async function startIpmiSim(n: RigNodeOptions, dir: string, port: number, solPort: number): Promise<ChildProcess> {
  const program = join(dir, 'chassis-control');
  const script = new URL('./chassis-control.ts', import.meta.url).pathname;
  // ipmi_sim runs it once per chassis request: Node's compile cache halves its start.
  writeFileSync(
    program,
    `#!/bin/sh\nNODE_COMPILE_CACHE='${join(dir, 'node-cache')}' exec '${process.execPath}' --no-warnings '${script}' '${dir}' "$@"\n`,
  );
  chmodSync(program, 0o755);
  writeFileSync(join(dir, 'lan.conf'), lanConf(n.name, port, solPort, program, n), { mode: 0o600 });
  writeFileSync(join(dir, 'node.emu'), NODE_EMU);
  mkdirSync(join(dir, 'ipmi-state'), { recursive: true });
  const log = openSync(join(dir, 'ipmi_sim.log'), 'a');
  const child = spawn('ipmi_sim', ['-c', 'lan.conf', '-f', 'node.emu', '-s', 'ipmi-state', '-n'], {
    cwd: dir,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  try {
    await ipmiAnswers(port, n, child);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return child;
}

export async function startRig(o: RigOptions): Promise<Rig> {
  validate(o);
  const root = resolve(o.dir);
  const qemu = o.qemu ?? 'qemu-system-x86_64';
  const accel = o.accelerator ?? (await accelerator(qemu));
  const nodes: RigNode[] = [];
  const machines: Machine[] = [];
  const taps: string[] = [];
  const sims: ChildProcess[] = [];
  const emulators: RedfishEmulator[] = [];
  const relays: SerialRelay[] = [];
  let madeBridge = false;

  const stop = async (): Promise<void> => {
    await Promise.all(machines.map(m => m.powerOff()));
    for (const child of sims) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise(r => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await Promise.all([...emulators, ...relays].map(e => e.close()));
    for (const tap of taps) await ip('link', 'del', tap).catch(() => {});
    if (madeBridge) await ip('link', 'del', o.bridge).catch(() => {});
  };

  try {
    if (!linkExists(o.bridge)) {
      await ip('link', 'add', 'name', o.bridge, 'type', 'bridge').catch((e: unknown) => {
        throw new Error(`could not make the bridge ${o.bridge}: ${stderrOf(e)}`);
      });
      madeBridge = true;
    } else if (!existsSync(`/sys/class/net/${o.bridge}/bridge`)) {
      throw new Error(`${o.bridge} exists and is not a bridge: name another one`);
    }
    await ip('link', 'set', o.bridge, 'up');
    for (const n of o.nodes) {
      const dir = join(root, n.name);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const tap = `rt${createHash('sha256').update(dir).digest('hex').slice(0, 10)}`;
      if (!linkExists(tap)) await ip('tuntap', 'add', 'dev', tap, 'mode', 'tap');
      taps.push(tap);
      await ip('link', 'set', tap, 'master', o.bridge, 'up');
      const machine = await Machine.create(dir, {
        name: n.name,
        mac: macOf(n.name),
        tap,
        memoryMib: n.memoryMib ?? 1024,
        diskGib: n.diskGib ?? 2,
        serialPort: await freeTcpPort(),
        accelerator: accel,
        qemu,
      });
      machines.push(machine);
      // Both BMCs serve the console through a relay, so that it opens, and
      // stays open, while the machine is off, as a real BMC's does.
      const relay = await startSerialRelay({ log: machine.serialLog, machinePort: machine.config.serialPort });
      relays.push(relay);
      const auth = `${encodeURIComponent(n.username)}:${encodeURIComponent(n.password)}`;
      let bmcUrl: string;
      const saved = savedBmcPort(dir);
      if (n.bmc === 'ipmi') {
        const port = (saved && (await udpPort(saved))) || (await udpPort(0));
        if (!port) throw new Error(`${n.name}: no free UDP port for its BMC`);
        sims.push(await startIpmiSim(n, dir, port, relay.port));
        bmcUrl = `ipmi://${auth}@127.0.0.1:${port}`;
        writeFileSync(bmcPortFile(dir), `${port}\n`);
      } else {
        const start = (port: number) =>
          startRedfishEmulator({ machine, username: n.username, password: n.password, consolePort: relay.port, port });
        const emulator = await (saved ? start(saved).catch(() => start(0)) : start(0));
        emulators.push(emulator);
        bmcUrl = `redfish+http://${auth}@127.0.0.1:${emulator.port}`;
        writeFileSync(bmcPortFile(dir), `${emulator.port}\n`);
      }
      nodes.push({ name: n.name, bmcUrl, mac: machine.config.mac, serialLog: machine.serialLog, dir });
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { nodes, stop };
}
