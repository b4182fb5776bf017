// `strata dev --with-metal 2` end to end, as a newcomer runs it: one command
// gives two emulated bare-metal servers, enrolled, inspected and provided to
// `available` while it prints each step; the busybox image deploys to one of
// them and its output comes back through the CLI; Ctrl-C tears the rig down;
// started again on the same data, it finds its nodes where they were. Needs
// root, QEMU, ipmi_sim and dnsmasq (scripts/metal.sh). Uses its own bridge and
// subnet, so that it runs beside the other metal tests.
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { NodeOut } from '../src/model/nodes.ts';
import { macOf } from '../src/rig/metal/machine.ts';
import {
  cliEnv,
  client,
  freePort,
  removeDir,
  runCli,
  strataBin,
  TEST_IMAGE,
  tempDir,
  until,
  type Client,
} from './helpers.ts';

const BRIDGE = 'stmetal3';
const CIDR = '172.30.253.1/24';
/** TCG on two shared cores: a step that boots the ramdisk takes from ~10 s idle to a few minutes loaded. */
const SETTLE_MS = 480_000;

let dir: string;
let data: string;
let env: Record<string, string | undefined>;
let metalPort: number;

interface Dev {
  child: ChildProcess;
  output(): string;
  api: Client;
  exited: Promise<number | null>;
}

let dev: Dev | undefined;

before(async () => {
  dir = tempDir('strata-dev-metal-');
  data = join(dir, 'data');
  env = cliEnv(join(dir, 'config.yaml'), dir);
  metalPort = await freePort();
});

after(async () => {
  if (dev && dev.child.exitCode === null && dev.child.signalCode === null) {
    dev.child.kill('SIGKILL');
    await dev.exited;
  }
  // What a failed test may have left: the rig's processes, its taps and its bridge.
  for (const pid of rigProcesses()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  for (const link of linksOn(BRIDGE)) execFileSync('ip', ['link', 'del', link]);
  if (existsSync(`/sys/class/net/${BRIDGE}`)) execFileSync('ip', ['link', 'del', BRIDGE]);
  removeDir(dir);
});

/** Processes of this test's rig and agent: their command line or working directory is under the data directory. */
function rigProcesses(): number[] {
  const found: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmdline = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (/^\d+ \(.*\) Z/.test(stat)) continue;
      if (cmdline.includes(data) || readlinkSync(`/proc/${p}/cwd`).startsWith(data)) found.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** The interfaces enslaved to `bridge` (the rig's taps). */
function linksOn(bridge: string): string[] {
  const dir = `/sys/class/net/${bridge}/brif`;
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** `strata dev --with-metal 2` on this test's data, bridge and subnet; resolves once its banner is out. */
async function startDev(): Promise<Dev> {
  const args = ['dev', '--data', data, '--listen', '127.0.0.1:0', '--with-metal', '2'];
  args.push('--metal-bridge', BRIDGE, '--metal-cidr', CIDR, '--metal-port', String(metalPort));
  const child = spawn(strataBin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>(r => child.once('exit', code => r(code)));
  const url = await until(
    'the banner of strata dev',
    async () => {
      if (child.exitCode !== null) throw new Error(`strata dev exited (${child.exitCode}): ${out}`);
      return /Strata is running at (http:\/\/\S+)/.exec(out)?.[1];
    },
    120_000,
  );
  const token = readFileSync(join(data, 'admin.token'), 'utf8').trim();
  return { child, output: () => out, api: client(url, token), exited };
}

async function nodes(api: Client): Promise<NodeOut[]> {
  const res = await api.get<{ items: NodeOut[] }>('/v1/nodes');
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.items;
}

/** Waits until node-1 and node-2 are both available; a node that fails a step fails the test with its reason. */
async function bothAvailable(d: Dev): Promise<NodeOut[]> {
  let last: NodeOut[] = [];
  try {
    return await until(
      'node-1 and node-2 available',
      async () => {
        if (d.child.exitCode !== null) throw new Error(`strata dev exited: ${d.output()}`);
        last = await nodes(d.api);
        for (const n of last)
          if (n.provisionState.endsWith('failed')) throw new Error(`${n.name} is ${n.provisionState}: ${n.lastError}`);
        const ready = last.filter(n => n.provisionState === 'available');
        return ready.length === 2 ? ready.sort((a, b) => a.name.localeCompare(b.name)) : undefined;
      },
      SETTLE_MS,
    );
  } catch (err) {
    const states = last.map(n => `${n.name} ${n.provisionState}`).join(', ');
    throw new Error(`${(err as Error).message} (${states}); strata dev said:\n${d.output()}`);
  }
}

/** Ctrl-C: strata dev exits 0, and nothing of its rig is left: processes, taps, bridge. */
async function stopDev(d: Dev): Promise<void> {
  d.child.kill('SIGINT');
  assert.equal(await d.exited, 0, `strata dev exits cleanly on Ctrl-C: ${d.output()}`);
  assert.deepEqual(
    rigProcesses().map(p => readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ')),
    [],
    'no QEMU, ipmi_sim, dnsmasq or agent left',
  );
  assert.deepEqual(linksOn(BRIDGE), [], 'no tap left');
  assert.equal(existsSync(`/sys/class/net/${BRIDGE}`), false, 'the bridge it made is gone');
}

let enrolled: NodeOut[] = [];

test('strata dev --with-metal 2 makes two nodes available with their inspected capacity, printing each step', {
  timeout: SETTLE_MS + 120_000,
}, async () => {
  dev = await startDev();
  assert.match(dev.output(), new RegExp(`2 emulated servers on bridge ${BRIDGE}`));
  enrolled = await bothAvailable(dev);
  assert.deepEqual(
    enrolled.map(n => [n.name, n.bmc.protocol]),
    [
      ['node-1', 'ipmi'],
      ['node-2', 'redfish'],
    ],
  );
  for (const n of enrolled) {
    assert.ok(n.hardware, `${n.name} was inspected`);
    assert.ok(
      n.hardware.nics.some(x => x.mac === macOf(n.name)),
      `${n.name}: its own NIC was found`,
    );
    assert.equal(n.capacity.vcpus, 1);
    assert.ok(n.capacity.memoryMib > 900 && n.capacity.memoryMib <= 1024, `${n.capacity.memoryMib} MiB`);
    assert.equal(n.capacity.diskGib, 2);
    const hosts = (await dev.api.get('/v1/hosts')).body.items as { name: string; kind: string }[];
    assert.deepEqual(
      [n.conductor],
      hosts.filter(h => h.kind !== 'metal').map(h => h.name),
      'the local agent conducts it',
    );
    assert.doesNotMatch(JSON.stringify(n), /rig-\d-pass/, 'the BMC password is not shown');
  }
  // Each step was printed as it happened.
  const d = dev;
  await until('the summary line', async () =>
    /2 of 2 bare-metal nodes available/.test(d.output()) ? true : undefined,
  );
  for (const name of ['node-1', 'node-2'])
    for (const step of ['enrolled', 'verifying', 'inspecting', 'inspected: 1 CPU', 'cleaning', 'available'])
      assert.match(dev.output(), new RegExp(`strata dev: ${name}: ${step}`), `${name}: ${step}`);
  // And the CLI, through the context strata dev made current, shows them.
  const list = await runCli(['node', 'list'], env);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /node-1\s+available\s+ipmi:\/\/admin@127\.0\.0\.1:\d+\s+1\s+1Gi/);
  assert.match(list.stdout, /node-2\s+available\s+redfish\+http:\/\/admin@127\.0\.0\.1:\d+\s+1\s+1Gi/);
});

test('the busybox image runs on one of the nodes; its output comes back through strata logs; delete frees it', {
  timeout: SETTLE_MS + 120_000,
}, async () => {
  assert.ok(dev, 'strata dev runs');
  const cmd = ['sh', '-c', 'echo hello from bare metal on $(hostname)'];
  const created = await runCli(['run', '--kind', 'metal', '--name', 'm1', TEST_IMAGE, '--', ...cmd], env);
  assert.equal(created.code, 0, created.stderr);
  const id = /\((ins_\w+)\)/.exec(created.stdout)?.[1];
  assert.ok(id, created.stdout);
  // Follows the node's console through the deploy and its boot from disk, and ends with the command.
  const logs = await runCli(['logs', '-f', 'm1'], env);
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /hello from bare metal on m1/);
  assert.match(logs.stdout, /strata-exit: 0/);
  // The agent reports the exit a moment after the console shows it.
  const api = dev.api;
  const m1 = await until('m1 stopped', async () => {
    const i = (await api.get(`/v1/instances/${id}`)).body;
    return i.state === 'stopped' || i.state === 'failed' ? i : undefined;
  });
  assert.equal(m1.state, 'stopped', JSON.stringify(m1));
  assert.equal(m1.exitCode, 0);
  const node = (await nodes(dev.api)).find(n => n.instance === m1.id);
  assert.ok(node, 'a node holds m1');
  assert.equal(node.provisionState, 'active');
  assert.equal(m1.node, node.id);

  const deleted = await runCli(['instance', 'delete', 'm1'], env);
  assert.equal(deleted.code, 0, deleted.stderr);
  const d = dev;
  const freed = await until('the node let go of m1', async () => {
    const n = (await nodes(d.api)).find(x => x.name === node.name);
    return n && n.instance === null ? n : undefined;
  });
  assert.ok(['undeploying', 'cleaning', 'available'].includes(freed.provisionState), freed.provisionState);
});

test('Ctrl-C tears the rig down; strata dev started again finds its nodes enrolled and makes them available', {
  timeout: SETTLE_MS + 120_000,
}, async () => {
  assert.ok(dev, 'strata dev runs');
  // A node may be in the middle of its cleaning now: its machine is on.
  await stopDev(dev);
  const first = dev;
  dev = await startDev();
  const again = await bothAvailable(dev);
  // The same nodes (not enrolled again), behind the same BMC addresses.
  assert.deepEqual(
    again.map(n => [n.id, n.bmc.address]),
    enrolled.map(n => [n.id, n.bmc.address]),
  );
  const d = dev;
  await until('both nodes said available', async () =>
    /node-1: available/.test(d.output()) && /node-2: available/.test(d.output()) ? true : undefined,
  );
  const second = dev.output();
  assert.doesNotMatch(second, /: enrolled \(|error|setup stopped|failed|agent exited/i, second);
  assert.notEqual(first.output(), second);
  await stopDev(dev);
});
