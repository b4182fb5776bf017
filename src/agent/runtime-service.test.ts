// Without Podman: a few-line HTTP server on the socket stands in for the
// service (`node -e SCRIPT unix://SOCKET`, the way the agent appends the URL).
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import {
  pingSocket,
  probeSocket,
  restartDelayMs,
  RuntimeService,
  runsCommand,
  serviceCommand,
} from './runtime-service.ts';

const log = pino({ level: 'silent' });
const root = mkdtempSync(join(tmpdir(), 'strata-rs-'));
const FAKE =
  "const p = process.argv[1].slice('unix://'.length); require('node:http').createServer((q, s) => s.end('OK')).listen(p)";
const fakeCommand = [process.execPath, '-e', FAKE];
const started: number[] = [];
let n = 0;

/** A fresh socket path and state directory. */
function place(): { socketPath: string; stateDir: string } {
  n++;
  return { socketPath: join(root, `s${n}.sock`), stateDir: join(root, `state${n}`) };
}

function service(p: { socketPath: string; stateDir: string }, command = fakeCommand): RuntimeService {
  return new RuntimeService({ ...p, log, command, startTimeoutMs: 5000, pingTimeoutMs: 300 });
}

const remember = (rs: RuntimeService): number => {
  assert.ok(rs.pid, 'a service pid');
  started.push(rs.pid);
  return rs.pid;
};

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    await new Promise(r => setTimeout(r, 50));
  }
  throw new Error(`timed out: ${what}`);
}

function listen(server: Server | ReturnType<typeof createNetServer>, path: string): Promise<void> {
  return new Promise(resolve => server.listen(path, resolve));
}

after(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  rmSync(root, { recursive: true, force: true });
});

test("the service command is Podman's API service on the agent's socket", () => {
  assert.deepEqual(serviceCommand({ socketPath: '/run/x/podman.sock' }), [
    'podman',
    'system',
    'service',
    '--time=0',
    'unix:///run/x/podman.sock',
  ]);
  assert.deepEqual(serviceCommand({ socketPath: '/s', command: ['my-podman', 'serve'] }), [
    'my-podman',
    'serve',
    'unix:///s',
  ]);
});

test('restarts back off from 1 s, doubling, to at most 30 s', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(restartDelayMs), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
});

test('a socket tells answering, silent (listening, no answer) and absent (no file, nobody listening) apart', async () => {
  const p = place();
  assert.equal(await probeSocket('/nonexistent/strata.sock', 200), 'absent');
  assert.equal(await pingSocket('/nonexistent/strata.sock', 200), false);
  const http = createServer((_q, s) => s.end('OK'));
  await listen(http, p.socketPath);
  assert.equal(await probeSocket(p.socketPath), 'answers');
  http.close();
  const mute = createNetServer(() => undefined);
  const mutePath = `${p.socketPath}.mute`;
  await listen(mute, mutePath);
  assert.equal(await probeSocket(mutePath, 200), 'silent');
  mute.close();
  // A leftover file from a killed service: nobody listens.
  const stale = `${p.socketPath}.stale`;
  const dies = spawnSync(process.execPath, [
    '-e',
    `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  assert.equal(dies.signal, 'SIGKILL');
  assert.ok(existsSync(stale));
  assert.equal(await probeSocket(stale), 'absent');
});

test('runsCommand matches a live process by its exact command line', async () => {
  const child = spawn('sleep', ['30']);
  assert.ok(child.pid);
  assert.equal(runsCommand(child.pid, ['sleep', '30']), true);
  assert.equal(runsCommand(child.pid, ['sleep', '31']), false);
  child.kill('SIGKILL');
  await new Promise(r => child.once('exit', r));
  assert.equal(runsCommand(child.pid, ['sleep', '30']), false);
});

test('nothing on the socket: starts the service, detached, with its pid file; supervision brings it back after a kill', async () => {
  const p = place();
  const rs = service(p);
  assert.equal(await rs.ensure(), true);
  const first = remember(rs);
  assert.equal(await pingSocket(p.socketPath), true);
  assert.equal(readFileSync(join(p.stateDir, 'service.pid'), 'utf8').trim(), String(first));
  // Its own session: a signal to the agent's process group does not reach it.
  const stat = readFileSync(`/proc/${first}/stat`, 'utf8');
  const sid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
  assert.equal(sid, first, 'the service leads its own session');

  rs.supervise(100);
  process.kill(first, 'SIGKILL');
  const second = await until('a new service', async () =>
    rs.pid !== first && (await pingSocket(p.socketPath)) ? rs.pid : undefined,
  );
  started.push(second!);
  await rs.stop();
  assert.equal(
    runsCommand(second!, serviceCommand({ socketPath: p.socketPath, command: fakeCommand })),
    true,
    'stopping the supervisor leaves the service running',
  );
  assert.equal(await pingSocket(p.socketPath), true);

  // A restarted agent adopts the service it started before, and watches it again.
  const again = service(p);
  assert.equal(await again.ensure(), true);
  assert.equal(again.pid, second);
  again.supervise(100);
  process.kill(second!, 'SIGKILL');
  const third = await until('the adopted service is brought back', async () =>
    again.pid !== second && (await pingSocket(p.socketPath)) ? again.pid : undefined,
  );
  started.push(third!);
  await again.stop();
});

test('our own service that hangs is killed and replaced', async () => {
  const p = place();
  const rs = service(p);
  await rs.ensure();
  const first = remember(rs);
  rs.supervise(100);
  process.kill(first, 'SIGSTOP');
  const second = await until('a replacement', async () =>
    rs.pid !== first && (await pingSocket(p.socketPath)) ? rs.pid : undefined,
  );
  started.push(second!);
  await rs.stop();
  assert.equal(
    existsSync(`/proc/${first}/cmdline`) && readFileSync(`/proc/${first}/cmdline`, 'utf8') !== '',
    false,
    'the hung one is gone',
  );
});

test('a socket something else serves is left alone, even when it turns slow', async () => {
  const p = place();
  let slow = false;
  const foreign = createServer((_q, s) => {
    if (!slow) s.end('OK');
  });
  await listen(foreign, p.socketPath);
  const rs = service(p);
  assert.equal(await rs.ensure(), false);
  assert.equal(rs.owned, false);
  rs.supervise(50);
  slow = true;
  await new Promise(r => setTimeout(r, 1200));
  await rs.stop();
  assert.ok(existsSync(p.socketPath), 'the foreign socket is still there');
  assert.equal(rs.pid, undefined, 'no service was started');
  assert.equal(existsSync(join(p.stateDir, 'service.pid')), false);
  foreign.closeAllConnections();
  foreign.close();
});

test('a socket something listens on without answering is not taken over', async () => {
  const p = place();
  const mute = createNetServer(() => undefined);
  await listen(mute, p.socketPath);
  await assert.rejects(service(p).ensure(), /does not answer the Docker API; not starting another/);
  assert.ok(existsSync(p.socketPath));
  mute.close();
});

test('no such binary: ensure says so plainly', async () => {
  const p = place();
  const rs = service(p, ['strata-no-such-podman', 'system', 'service']);
  await assert.rejects(rs.ensure(), /strata-no-such-podman is not installed \(not found on PATH\)/);
  assert.equal(rs.owned, false);
});

test('a service that exits at once is reported with its log', async () => {
  const p = place();
  await assert.rejects(
    service(p, [process.execPath, '-e', 'process.exit(3)']).ensure(),
    /exited \(3\); see .*runtime-service\.log/,
  );
});
