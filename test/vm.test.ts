// Virtual machines for real: QEMU (TCG here, KVM where it works) booting
// Strata's guest kernel and init with a busybox root disk from the image
// store, driven through the API by a real agent.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { alive, qemuFor, startContainerFixture, until, type Client, type ContainerFixture } from './helpers.ts';

const ASSETS = process.env.STRATA_VM_DIR ?? '/var/lib/strata-host/vm';
const BASE = join(ASSETS, 'images', 'busybox.qcow2');

let fx: ContainerFixture;
let admin: Client;
const baseHash = () => createHash('sha256').update(readFileSync(BASE)).digest('hex');
let baseBefore: string;

before(async () => {
  baseBefore = baseHash();
  fx = await startContainerFixture('vm-node', { drivers: ['vm'] });
  admin = fx.admin;
});
after(() => fx.close());

const vm = (command: string[], extra: Record<string, unknown> = {}) =>
  fx.run({ kind: 'vm', image: 'busybox', command, resources: { vcpus: 1, memoryMib: 256, diskGib: 1 }, ...extra });

const logsOf = async (id: string): Promise<string> => {
  const res = await admin.get(`/v1/instances/${id}/logs`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const body = typeof res.body === 'string' ? res.body : JSON.stringify(res.body);
  return body
    .split('\n')
    .filter(Boolean)
    .map(l => (JSON.parse(l) as { data: string }).data)
    .join('');
};

/** Waits until the instance's console log holds `text`. */
const consoleShows = (id: string, text: string) =>
  until(
    `${JSON.stringify(text)} on the console`,
    async () => ((await logsOf(id)).includes(text) ? true : undefined),
    60_000,
  );

/** The instance's QEMU, counted from the processes (a pidfile could name one of two). */
const pidOf = (id: string): number => {
  const pids = qemuFor(id);
  assert.equal(pids.length, 1, `QEMU processes of ${id}: ${pids.join(', ')}`);
  return pids[0]!;
};

test('a VM boots to its command, shows its console through the API, and stops gracefully', async () => {
  const id = await vm(['sh', '-c', 'echo "vm-marker from $(hostname)"; while true; do sleep 1; done'], {
    name: 'vm-one',
    stopGraceSeconds: 20,
  });
  const running = await fx.waitFor(id, 'running', 90_000);
  assert.equal(
    running.observed.accelerator === 'tcg' || running.observed.accelerator === 'kvm',
    true,
    `accelerator ${running.observed.accelerator}`,
  );
  const log = await until('the marker on the console', async () => {
    const l = await logsOf(id);
    return l.includes('vm-marker from vm-one') ? l : undefined;
  });
  assert.match(log, /strata-guest: ready/);
  // What QEMU takes from the host stays within what placement counts for it:
  // the guest's memory plus the VM overhead (a bounded TCG cache, QEMU itself).
  // Under TCG the translation cache is bounded (QEMU 7.2 reserves 1 GiB by default).
  const { vm: vmKind } = await import('../src/kinds/vm/index.ts');
  const argv = readFileSync(`/proc/${pidOf(id)}/cmdline`, 'utf8').split('\0');
  const accel = argv[argv.indexOf('-accel') + 1];
  assert.ok(accel === 'kvm' || accel === 'tcg,tb-size=128', `-accel ${accel}`);
  const rssMib = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pidOf(id)}/status`, 'utf8'))?.[1]) / 1024;
  assert.ok(
    rssMib > 0 && rssMib <= 256 + vmKind.hostMemoryOverheadMib,
    `QEMU holds ${rssMib.toFixed(0)} MiB for a 256 MiB guest`,
  );

  assert.equal((await admin.post(`/v1/instances/${id}/stop`)).status, 202);
  await fx.waitFor(id, 'stopped', 60_000);
  const after = await logsOf(id);
  assert.match(after, /power button: stopping/, 'the guest was asked through ACPI');
  assert.match(after, /strata-exit: 143/, 'the command ended on SIGTERM, not by a kill');
});

test('a guest that ignores the power button is stopped hard after the grace period', async () => {
  const id = await vm(['sh', '-c', 'trap "" TERM; echo stubborn; while true; do sleep 1; done'], {
    stopGraceSeconds: 2,
  });
  await fx.waitFor(id, 'running', 90_000);
  await consoleShows(id, 'stubborn'); // only once the trap is set does the guest ignore the power button
  pidOf(id); // exactly one QEMU before the stop
  assert.equal((await admin.post(`/v1/instances/${id}/stop`)).status, 202);
  const stopped = await fx.waitFor(id, 'stopped', 60_000);
  assert.equal(stopped.exitCode, null, 'no exit code: QEMU was made to quit');
  assert.deepEqual(qemuFor(id), [], 'the QEMU process is gone');
  assert.doesNotMatch(await logsOf(id), /strata-exit/);
});

test('one-shot commands report their exit code; overlays are isolated and the base never changes', async () => {
  const writer = await vm(['sh', '-c', 'echo secret > /written-by-a; sync; cat /written-by-a; exit 3']);
  const failed = await fx.waitFor(writer, 'failed', 90_000);
  assert.equal(failed.exitCode, 3);
  assert.match(await logsOf(writer), /secret/);

  const reader = await vm(['sh', '-c', 'if [ -e /written-by-a ]; then echo leaked; else echo isolated; fi']);
  const done = await fx.waitFor(reader, 'stopped', 90_000);
  assert.equal(done.exitCode, 0);
  const out = await logsOf(reader);
  assert.match(out, /isolated/);
  assert.doesNotMatch(out, /leaked/);

  // The writer's disk keeps its data across a start: it is that VM's disk.
  assert.equal((await admin.post(`/v1/instances/${writer}/start`)).status, 202);
  await fx.waitFor(writer, 'failed', 90_000);
  assert.match(await logsOf(writer), /secret/);
  assert.equal(baseHash(), baseBefore, 'the base image is untouched');

  assert.equal((await admin.delete(`/v1/instances/${writer}`)).status, 202);
  await until('gone', async () => ((await admin.get(`/v1/instances/${writer}`)).status === 404 ? true : undefined));
  assert.throws(
    () => readFileSync(join(fx.agentData, 'vm', writer, 'root.qcow2')),
    'the overlay is deleted with the instance',
  );
  assert.equal(baseHash(), baseBefore);
});

test('an agent killed with -9 finds its running VM again and never starts a second QEMU', async () => {
  const id = await vm(['sh', '-c', 'echo survivor; while true; do sleep 1; done'], { stopGraceSeconds: 20 });
  await fx.waitFor(id, 'running', 90_000);
  const pid = pidOf(id);
  fx.agent.kill('SIGKILL');
  await new Promise(r => fx.agent.once('exit', r));
  assert.ok(alive(pid), 'the VM runs on without its agent');
  const before = (await admin.get(`/v1/instances/${id}`)).body.updatedAt;
  fx.restartAgent();
  // Asked while the agent is away, the logs wait for it to come back.
  assert.match(await logsOf(id), /survivor/);
  // A re-attached instance has its observed state reported again: the new
  // agent has reconciled it by then.
  const found = await until('the new agent re-attaches', async () => {
    const i = (await admin.get(`/v1/instances/${id}`)).body;
    return i.updatedAt !== before ? i : undefined;
  });
  assert.equal(found.state, 'running');
  assert.deepEqual(qemuFor(id), [pid], 'the same QEMU, and only it');
  assert.equal((await admin.post(`/v1/instances/${id}/stop`)).status, 202);
  await fx.waitFor(id, 'stopped', 60_000);
  assert.deepEqual(qemuFor(id), [], 'no QEMU left');
});

test('bad VM input fails the instance with the reason and leaves nothing running', async () => {
  const missing = await vm(['true'], { image: 'no-such-image' });
  const m = await fx.waitFor(missing, 'failed');
  assert.match(m.message, /no-such-image is not in this host's image store/);

  // A qcow2 header with nonsense after it, and a raw disk with no filesystem.
  const corrupt = join(ASSETS, 'images', `corrupt-${process.pid}.qcow2`);
  const header = Buffer.alloc(4096);
  header.write('QFI\xfb', 0, 'latin1');
  header.writeUInt32BE(3, 4);
  header.fill(0xff, 8);
  writeFileSync(corrupt, header);
  const blank = join(ASSETS, 'images', `blank-${process.pid}.raw`);
  writeFileSync(blank, Buffer.alloc(1 << 20));
  try {
    const bad = await vm(['true'], { image: `corrupt-${process.pid}` });
    const b = await fx.waitFor(bad, 'failed');
    assert.match(b.message, /not a usable disk image/);
    const empty = await vm(['true'], { image: `blank-${process.pid}` });
    const e = await fx.waitFor(empty, 'failed', 90_000);
    assert.match(e.message, /the guest stopped while booting: cannot mount the root disk/);
    assert.deepEqual(qemuFor(empty), [], 'no QEMU left behind');
    assert.throws(() => readFileSync(join(fx.agentData, 'vm', empty, 'root.qcow2')), 'nor its overlay');
  } finally {
    rmSync(corrupt, { force: true });
    rmSync(blank, { force: true });
  }

  const huge = await vm(['true'], {
    resources: { vcpus: 1, memoryMib: 10_000_000, diskGib: 1 },
    waitForCapacity: false,
  });
  const h = await fx.waitFor(huge, 'failed');
  assert.match(h.message, /unplaced: .*memory/);
});

test("a VM whose own init exits fails with the kernel's reason instead of rebooting forever", async () => {
  // A root disk whose /sbin/init exits at once, in the host's image store.
  const root = mkdtempSync(join(tmpdir(), 'strata-init-exits-'));
  const image = join(ASSETS, 'images', `init-exits-${process.pid}.raw`);
  try {
    mkdirSync(join(root, 'bin'));
    mkdirSync(join(root, 'sbin'));
    copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
    symlinkSync('busybox', join(root, 'bin', 'sh'));
    writeFileSync(join(root, 'sbin', 'init'), '#!/bin/sh\necho "init: done already"\nexit 3\n', { mode: 0o755 });
    writeFileSync(image, Buffer.alloc(0));
    truncateSync(image, 16 << 20);
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', root, image]);
    const id = await vm([], { image: `init-exits-${process.pid}` });
    const failed = await fx.waitFor(id, 'failed', 90_000);
    assert.match(failed.message, /the guest kernel panicked: Attempted to kill init/);
    assert.match(await logsOf(id), /init: done already/);
    assert.deepEqual(qemuFor(id), [], 'QEMU ended with the guest');
  } finally {
    rmSync(root, { recursive: true, force: true });
    rmSync(image, { force: true });
  }
});

test('a guest that is not up within the boot timeout fails, and its QEMU is stopped', async () => {
  const slow = await startContainerFixture('vm-impatient', { drivers: ['vm'], agentArgs: ['--vm-boot-timeout', '1'] });
  try {
    const id = await slow.run({
      kind: 'vm',
      image: 'busybox',
      command: ['true'],
      resources: { vcpus: 1, memoryMib: 256, diskGib: 1 },
    });
    const failed = await slow.waitFor(id, 'failed', 60_000);
    assert.match(failed.message, /did not boot within 1 s/);
    assert.deepEqual(qemuFor(id), []);
  } finally {
    await slow.close();
  }
});

test('one image, two isolation levels: the same OCI image prints the same as a container and as a VM', async () => {
  const image = '127.0.0.1:5000/library/busybox:latest';
  const command = ['sh', '-c', 'echo "same output: $GREETING from $(pwd), $(head -1 /etc/passwd)"'];
  const spec = { image, command, env: { GREETING: 'hi' }, workingDir: '/tmp' };
  const ctr = await fx.run({ ...spec, kind: 'container' });
  const vmId = await fx.run({ ...spec, kind: 'vm', resources: { vcpus: 1, memoryMib: 256, diskGib: 1 } });
  await fx.waitFor(ctr, 'stopped', 60_000);
  const done = await fx.waitFor(vmId, 'stopped', 120_000);
  assert.equal(done.exitCode, 0);
  const line = (log: string) => log.split(/\r?\n/).find(l => l.startsWith('same output:'));
  const fromContainer = line(await logsOf(ctr));
  const fromVm = line(await logsOf(vmId));
  assert.equal(
    fromContainer,
    'same output: hi from /tmp, root:x:0:0:root:/root:/bin/sh',
    `container: ${fromContainer} vm: ${fromVm}`,
  );
  assert.equal(fromVm, fromContainer);
  // The disk made from the image is cached: a second VM of it reuses it. A
  // second conversion would write a new file in its place.
  const images = join(fx.agentData, 'vm', '.images');
  const cachedDisks = () => readdirSync(images).filter(n => n.endsWith('.qcow2'));
  const [name] = cachedDisks();
  assert.deepEqual(cachedDisks(), [name]);
  const disk = join(images, name!);
  const made = statSync(disk);
  const second = await fx.run({ ...spec, kind: 'vm', resources: { vcpus: 1, memoryMib: 256, diskGib: 1 } });
  assert.equal((await fx.waitFor(second, 'stopped', 120_000)).exitCode, 0);
  assert.equal(line(await logsOf(second)), fromContainer);
  assert.deepEqual(cachedDisks(), [name]);
  const now = statSync(disk);
  assert.deepEqual([now.ino, now.mtimeMs], [made.ino, made.mtimeMs], 'the cached disk is the same file');
  const overlay = JSON.parse(
    execFileSync('qemu-img', ['info', '-U', '--output=json', join(fx.agentData, 'vm', second, 'root.qcow2')], {
      encoding: 'utf8',
    }),
  ) as { 'full-backing-filename'?: string; 'backing-filename'?: string };
  assert.equal(
    overlay['full-backing-filename'] ?? overlay['backing-filename'],
    disk,
    'its disk is backed by the cached one',
  );
});

test('restart reboots a VM in place: the same QEMU and disk, the guest boots again', async () => {
  const id = await vm(
    [
      'sh',
      '-c',
      'echo "boot $(cat /boots 2>/dev/null)"; echo x >> /boots; sync; echo synced; while true; do sleep 1; done',
    ],
    { stopGraceSeconds: 20 },
  );
  await fx.waitFor(id, 'running', 90_000);
  // The first boot's write must be on disk before the reset, or there is nothing to find after it.
  await consoleShows(id, 'synced');
  const pid = pidOf(id);
  assert.equal((await admin.post(`/v1/instances/${id}/restart`)).status, 202);
  let last = '';
  await until(
    'rebooted',
    async () => {
      const i = (await admin.get(`/v1/instances/${id}`)).body;
      const log = await logsOf(id);
      last = `${i.state} ${i.message} restartRequestedAt=${i.restartRequestedAt}\n${log.slice(-600)}`;
      return i.state === 'running' && i.restartRequestedAt === null && log.includes('boot x') ? true : undefined;
    },
    90_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last seen: ${last}`);
  });
  assert.deepEqual(qemuFor(id), [pid], 'the same QEMU process, and only it');
  const log = await logsOf(id);
  assert.equal(log.match(/strata-guest: ready/g)?.length, 2, 'two boots in one run');
  const states = (
    (await admin.get(`/v1/events?resource=${id}&limit=1000`)).body.items as {
      type: string;
      data: { to?: string; message?: string };
    }[]
  )
    .filter(e => e.type === 'instance.state')
    .map(e => `${e.data.to}${e.data.message ? ` (${e.data.message})` : ''}`);
  assert.deepEqual(states.slice(-2), ['starting (rebooting)', 'running']);
});

test('VMs are on a host bridge: the host reaches a guest at its reported address, and guests reach each other', async () => {
  const web = await vm(
    ['sh', '-c', 'mkdir -p /www && echo "served by $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www'],
    { name: 'vm-web', stopGraceSeconds: 2 },
  );
  const running = await fx.waitFor(web, 'running', 90_000);
  const address = await until('an address', async () => {
    const a = (await admin.get(`/v1/instances/${web}`)).body.observed.address as string | null;
    return a ?? undefined;
  });
  assert.match(address, /^10\.99\.0\.\d+$/);
  assert.equal(running.observed.accelerator !== null, true);
  const page = await until('the page over the bridge', async () => {
    const res = await fetch(`http://${address}:8080/`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    return res?.ok ? res.text() : undefined;
  });
  assert.equal(page, 'served by vm-web\n');

  const client = await vm(['sh', '-c', `wget -q -O- http://${address}:8080/ && echo fetched-ok`]);
  await fx.waitFor(client, 'stopped', 90_000);
  assert.match(await logsOf(client), /served by vm-web\s+fetched-ok/);

  // A health check reaches a VM the same way.
  const checked = await vm(
    ['sh', '-c', 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www'],
    {
      stopGraceSeconds: 2,
      healthCheck: { type: 'http', port: 8080, intervalSeconds: 1, timeoutSeconds: 1, retries: 2 },
    },
  );
  await until(
    'healthy',
    async () =>
      (await admin.get(`/v1/instances/${checked}`)).body.observed.health?.status === 'healthy' ? true : undefined,
    90_000,
  );
});

test('strata console attaches to the serial console: keys in, output out, Ctrl-] detaches and the VM runs on', async () => {
  const { cliEnv, onTerminal, strataBin, tempDir } = await import('./helpers.ts');
  const id = await vm(['sh'], { name: 'vm-console', stopGraceSeconds: 1 });
  await fx.waitFor(id, 'running', 90_000);
  const home = tempDir('strata-console-cli-');
  const env = cliEnv(join(home, 'config.yaml'), home, { STRATA_URL: fx.srv.url, STRATA_TOKEN: fx.srv.adminToken });
  const term = onTerminal(`${strataBin} console ${id}`, env);
  await term.shows('attached to the console');
  term.type('echo "answer=$((6*7))"\r');
  await term.shows('answer=42');
  term.type('\x1d');
  assert.equal(await term.exited, 0, term.output());
  assert.equal((await admin.get(`/v1/instances/${id}`)).body.state, 'running', 'detaching leaves the VM running');

  const { runCli } = await import('./helpers.ts');
  const exec = await runCli(['exec', id, '--', 'true'], env);
  assert.equal(exec.code, 1);
  assert.match(exec.stderr, /exec runs a process in a container; a VM has its serial console/);
});

test('pause stops the guest CPUs and resume lets it go on', async () => {
  const id = await vm(['sh', '-c', 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'], {
    stopGraceSeconds: 2,
  });
  await fx.waitFor(id, 'running', 90_000);
  const serial = join(fx.agentData, 'vm', id, 'serial.log');
  await until('ticking', async () => (readFileSync(serial, 'utf8').includes('tick 3') ? true : undefined));
  assert.equal((await admin.post(`/v1/instances/${id}/pause`)).status, 202);
  await fx.waitFor(id, 'paused');
  const frozen = readFileSync(serial, 'utf8').length;
  // QEMU itself says its CPUs are stopped (rather than waiting to see no output).
  const { Qmp } = await import('../src/drivers/vm/qmp.ts');
  const q = await Qmp.connect(join(fx.agentData, 'vm', id, 'qmp.sock'));
  try {
    const st = await q.execute<{ status: string; running: boolean }>('query-status');
    assert.deepEqual([st.status, st.running], ['paused', false]);
  } finally {
    q.close();
  }
  assert.equal(readFileSync(serial, 'utf8').length, frozen, 'no output while paused');
  assert.equal((await admin.post(`/v1/instances/${id}/resume`)).status, 202);
  await fx.waitFor(id, 'running');
  await until('ticking again', async () => (readFileSync(serial, 'utf8').length > frozen ? true : undefined));
});

test('q35 machines boot too, and a cloud-init NoCloud seed reaches the guest', async () => {
  const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIStrataTestKeyOnly test@strata';
  const read =
    'for d in /sys/block/vd*; do [ "$(cat $d/serial)" = cidata ] && mkdir -p /mnt && mount -t iso9660 -o ro /dev/${d##*/} /mnt; done; cat /mnt/meta-data; cat /mnt/user-data';
  const id = await vm(['sh', '-c', read], {
    name: 'vm-q35',
    machine: 'q35',
    cloudInit: { userData: '#cloud-config\nruncmd: [echo from-user-data]\n', sshAuthorizedKeys: [key] },
  });
  const done = await fx.waitFor(id, 'stopped', 120_000);
  assert.equal(done.machine, 'q35');
  const log = await logsOf(id);
  assert.match(log, /local-hostname: vm-q35/);
  assert.match(log, /instance-id: ins_/);
  assert.ok(log.includes(key), 'the SSH key is in meta-data');
  assert.match(log, /runcmd: \[echo from-user-data\]/);

  const refused = await admin.post('/v1/instances', {
    project: 'default',
    kind: 'container',
    image: 'busybox',
    machine: 'q35',
  });
  assert.equal(refused.status, 400);
  assert.match(refused.body.error.message, /machine applies to VMs only/);
  for (const extra of [
    { user: 'nobody' },
    { ports: [{ containerPort: 80 }] },
    { readOnlyRootfs: true },
    { tmpfs: [{ path: '/t' }] },
  ]) {
    const r = await admin.post('/v1/instances', { project: 'default', kind: 'vm', image: 'busybox', ...extra });
    assert.equal(r.status, 400, JSON.stringify(extra));
    assert.match(r.body.error.message, /applies to containers only/);
  }
});

test('stop --force switches a VM off at once, without asking the guest', async () => {
  const { cliEnv, runCli, tempDir } = await import('./helpers.ts');
  const id = await vm(['sh', '-c', 'echo up; while true; do sleep 1; done'], {
    name: 'vm-force',
    stopGraceSeconds: 600,
  });
  await fx.waitFor(id, 'running', 90_000);
  const home = tempDir('strata-force-cli-');
  const env = cliEnv(join(home, 'config.yaml'), home, { STRATA_URL: fx.srv.url, STRATA_TOKEN: fx.srv.adminToken });
  const r = await runCli(['instance', 'stop', '--force', 'vm-force'], env);
  assert.equal(r.code, 0, r.stderr);
  const stopped = await fx.waitFor(id, 'stopped');
  assert.equal(stopped.exitCode, null);
  assert.doesNotMatch(await logsOf(id), /power button/, 'the guest was never asked');
  // The next start forgets the forced stop.
  assert.equal((await admin.post(`/v1/instances/${id}/start`)).status, 202);
  const again = await fx.waitFor(id, 'running', 90_000);
  assert.equal(again.stopGraceOverride, null);
  assert.equal((await admin.post(`/v1/instances/${id}/stop?graceSeconds=0`)).status, 202);
  await fx.waitFor(id, 'stopped');
  assert.equal((await admin.post(`/v1/instances/${id}/stop?graceSeconds=-1`)).status, 400);
});
