// Shared fixtures for end-to-end tests: a real server (in this process or as a
// child process) on a free loopback port with its own data directory, and a
// small JSON client.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import type { HttpLimits } from '../src/api/app.ts';
import type { ContainerFields } from '../src/drivers/container/fields.ts';
import type { InstanceSpec } from '../src/drivers/driver.ts';
import { startServer, type RunningServer, type ServerOptions } from '../src/server/server.ts';

export const repoRoot = new URL('..', import.meta.url).pathname;
export const strataBin = join(repoRoot, 'bin', 'strata');

export function tempDir(prefix = 'strata-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface TestServer {
  url: string;
  dataDir: string;
  adminToken: string;
  server: RunningServer;
  close(): Promise<void>;
}

export async function startTestServer(
  opts: {
    dataDir?: string;
    heartbeatSeconds?: number;
    limits?: Partial<HttpLimits>;
    nodeStepTimeouts?: ServerOptions['nodeStepTimeouts'];
  } = {},
): Promise<TestServer> {
  const dataDir = opts.dataDir ?? tempDir();
  const server = await startServer({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    logger: pino({ level: process.env.STRATA_TEST_LOG ?? 'silent' }),
    heartbeatSeconds: opts.heartbeatSeconds ?? 5,
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(opts.nodeStepTimeouts ? { nodeStepTimeouts: opts.nodeStepTimeouts } : {}),
  });
  return {
    url: server.url,
    dataDir,
    adminToken: readFileSync(server.adminTokenFile, 'utf8').trim(),
    server,
    close: () => server.close(),
  };
}

export interface ServerProcess {
  url: string;
  dataDir: string;
  adminToken: string;
  child: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** `strata server` as a child process, for restart and crash tests. */
export async function startServerProcess(dataDir: string, extra: string[] = []): Promise<ServerProcess> {
  const child = spawn(strataBin, ['server', '--data', dataDir, '--listen', '127.0.0.1:0', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const errs: string[] = [];
    child.stderr!.on('data', (d: Buffer) => errs.push(d.toString()));
    child.once('exit', code => reject(new Error(`server exited with ${code}: ${errs.join('')}`)));
    lines.on('line', line => {
      try {
        const rec = JSON.parse(line) as { msg?: string; url?: string };
        if (rec.msg === 'strata server listening' && rec.url) resolve(rec.url);
      } catch {
        // not a log line
      }
    });
  });
  return {
    url,
    dataDir,
    adminToken: readFileSync(join(dataDir, 'admin.token'), 'utf8').trim(),
    child,
    stop: (signal = 'SIGTERM') =>
      new Promise<void>(resolve => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}

export interface Reply<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

/** A bare JSON client: no retries, no helpers that could hide a server's answer. */
export function client(url: string, token?: string) {
  const call = async <T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Reply<T>> => {
    const h: Record<string, string> = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      h['content-type'] ??= 'application/json';
      payload = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch(url + path, { method, headers: h, body: payload });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // leave as text
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  };
  return {
    get: <T = any>(p: string) => call<T>('GET', p),
    post: <T = any>(p: string, b?: unknown, h?: Record<string, string>) => call<T>('POST', p, b, h),
    put: <T = any>(p: string, b?: unknown) => call<T>('PUT', p, b),
    patch: <T = any>(p: string, b?: unknown) => call<T>('PATCH', p, b),
    delete: <T = any>(p: string) => call<T>('DELETE', p),
    call,
  };
}
export type Client = ReturnType<typeof client>;

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment for a CLI child process: only the given config file and
 * overrides, none of the caller's STRATA_* settings.
 */
export function cliEnv(
  configFile: string,
  configHome: string,
  extra: Record<string, string> = {},
): Record<string, string | undefined> {
  const e: Record<string, string | undefined> = {
    ...process.env,
    STRATA_CONFIG: configFile,
    XDG_CONFIG_HOME: configHome,
  };
  for (const k of ['STRATA_URL', 'STRATA_TOKEN', 'STRATA_PROJECT', 'STRATA_DEBUG']) delete e[k];
  return { ...e, ...extra };
}

/** Runs bin/strata to completion and collects its output; `input` becomes its standard input. */
export function runCli(args: string[], env: Record<string, string | undefined>, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(strataBin, args, { env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (input !== undefined) child.stdin!.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', code => resolve({ code, stdout, stderr }));
  });
}

/** The CLI as a server's admin, its config under `dir`: each call runs one command, which must succeed. */
export function adminCli(srv: TestServer, dir: string): (args: string[]) => Promise<CliResult> {
  const env = cliEnv(join(dir, 'config.yaml'), dir, { STRATA_URL: srv.url, STRATA_TOKEN: srv.adminToken });
  return async args => {
    const r = await runCli(args, env);
    if (r.code !== 0) throw new Error(`strata ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r;
  };
}

/** Polls `fn` until it returns something other than undefined. */
export async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>(r => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise(r => s.close(r));
  return port;
}

export const PODMAN_SOCKET = process.env.STRATA_DOCKER_SOCKET ?? '/run/podman/podman.sock';
export const TEST_IMAGE = '127.0.0.1:5000/library/busybox:latest';

/**
 * `strata agent` as a child process on Podman's socket, quiet but for its
 * warnings (on this process's stderr). `extra` flags come last, so they win.
 * `stdout: 'pipe'` keeps its log lines (JSON) for the caller to read.
 */
export function spawnAgentProcess(a: {
  server: string;
  joinToken: string;
  dataDir: string;
  name: string;
  cpuOvercommit?: number;
  extra?: string[];
  stdout?: 'pipe' | 'ignore';
}): ChildProcess {
  const args = ['agent', '--server', a.server, '--data', a.dataDir, '--name', a.name];
  args.push('--docker-socket', PODMAN_SOCKET, '--log-level', 'warn');
  args.push('--cpu-overcommit', String(a.cpuOvercommit ?? 16), '--join-token', a.joinToken, ...(a.extra ?? []));
  return spawn(strataBin, args, { stdio: ['ignore', a.stdout ?? 'ignore', 'inherit'] });
}

/** A server in this process and a real agent process on Podman, for container tests. */
export interface ContainerFixture {
  srv: TestServer;
  admin: Client;
  hostId: string;
  joinToken: string;
  agentData: string;
  agent: ChildProcess;
  /** Starts the agent again (after a kill), with the same identity. */
  restartAgent(): ChildProcess;
  /** Creates a container instance in `default` and answers its id. */
  run(body: Record<string, unknown>): Promise<string>;
  /** Waits until the instance is in `state` and answers it. */
  waitFor(id: string, state: string, timeoutMs?: number): Promise<any>;
  close(): Promise<void>;
}

/** `drivers`: the drivers the host must offer before the fixture is ready (default: container). */
export async function startContainerFixture(
  name: string,
  opts: { agentArgs?: string[]; drivers?: string[]; nodeStepTimeouts?: ServerOptions['nodeStepTimeouts'] } = {},
): Promise<ContainerFixture> {
  const { default: Docker } = await import('dockerode');
  const { HOST_LABEL } = await import('../src/drivers/container/driver.ts');
  const docker = new Docker({ socketPath: PODMAN_SOCKET });
  const srv = await startTestServer(opts.nodeStepTimeouts ? { nodeStepTimeouts: opts.nodeStepTimeouts } : {});
  const admin = client(srv.url, srv.adminToken);
  const joinToken = (await admin.post('/v1/join-tokens', {})).body.secret as string;
  const agentData = tempDir(`strata-${name}-agent-`);
  const spawnAgent = () =>
    spawnAgentProcess({ server: srv.url, joinToken, dataDir: agentData, name, extra: opts.agentArgs ?? [] });
  const f: ContainerFixture = {
    srv,
    admin,
    hostId: '',
    joinToken,
    agentData,
    agent: spawnAgent(),
    restartAgent: () => (f.agent = spawnAgent()),
    async run(body) {
      const res = await admin.post('/v1/instances', {
        project: 'default',
        kind: 'container',
        image: TEST_IMAGE,
        resources: { vcpus: 1, memoryMib: 64 },
        ...body,
      });
      if (res.status !== 201) throw new Error(`create answered ${res.status}: ${JSON.stringify(res.body)}`);
      return res.body.id as string;
    },
    waitFor: (id, state, timeoutMs) =>
      until(
        `${id} ${state}`,
        async () => {
          const i = (await admin.get(`/v1/instances/${id}`)).body;
          return i.state === state ? i : undefined;
        },
        timeoutMs,
      ),
    async close() {
      f.agent.kill('SIGKILL');
      killProcessesMentioning(agentData);
      // The taps of its VMs (their address leases lapse with the directory).
      const { tapName, deleteTap } = await import('../src/drivers/vm/network.ts');
      for (const id of existsSync(join(agentData, 'vm')) ? readdirSync(join(agentData, 'vm')) : [])
        await deleteTap(tapName(id));
      for (const c of await docker.listContainers({ all: true, filters: { label: [`${HOST_LABEL}=${f.hostId}`] } })) {
        await docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined);
      }
      // And the networks the driver made for this server's projects.
      const { networkName } = await import('../src/drivers/container/driver.ts');
      for (const p of (await admin.get('/v1/projects?limit=1000')).body.items as { id: string }[]) {
        await docker
          .getNetwork(networkName(p.id))
          .remove()
          .catch(() => undefined);
      }
      await srv.close();
      removeDir(agentData);
    },
  };
  const wanted = opts.drivers ?? ['container'];
  const host = await until(`the host offers ${wanted.join(', ') || 'its drivers'}`, async () => {
    const hosts = (await admin.get('/v1/hosts')).body.items as { id: string; name: string; drivers: string[] }[];
    return hosts.find(h => h.name === name && wanted.every(d => h.drivers.includes(d)));
  });
  f.hostId = host.id;
  return f;
}

/** SIGKILLs every process whose command line mentions `text` (VMs an agent left behind). */
export function killProcessesMentioning(text: string): void {
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text)) process.kill(Number(p), 'SIGKILL');
    } catch {
      // gone, or not ours to read
    }
  }
}

/** A live process (a zombie left for a PID 1 to reap is not). */
export const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

/** Live processes whose command line mentions `text`. */
export const processesMentioning = (text: string): number[] =>
  readdirSync('/proc')
    .filter(p => /^\d+$/.test(p))
    .filter(p => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text) && alive(Number(p));
      } catch {
        return false;
      }
    })
    .map(Number);

/** QEMU processes of an instance, found by its directory on their command line. */
export const qemuFor = (id: string): number[] => processesMentioning(`/vm/${id}/`);

/** A CLI command on a pseudo-terminal (util-linux `script`), as a user's shell would run it. */
export interface Terminal {
  /** Everything it printed so far. */
  output(): string;
  /** Waits until the output holds `text`. */
  shows(text: string, timeoutMs?: number): Promise<void>;
  type(keys: string): void;
  exited: Promise<number | null>;
}

export function onTerminal(command: string, env: Record<string, string | undefined>): Terminal {
  const child = spawn('script', ['-qefc', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return {
    output: () => out,
    shows: async (text, timeoutMs = 60_000) => {
      await until(JSON.stringify(text), async () => (out.includes(text) ? true : undefined), timeoutMs).catch(
        (err: Error) => {
          throw new Error(`${err.message}; the terminal shows ${JSON.stringify(out.slice(-2000))}`);
        },
      );
    },
    type: keys => void child.stdin!.write(keys),
    exited: new Promise(r => child.once('close', r)),
  };
}

/** A deployment's replica, as `GET /v1/deployments/{id}` shows it. */
export interface ReplicaSeen {
  id: string;
  name: string;
  slot: number;
  revision: number;
  state: string;
  desiredState: string;
  ready: boolean;
  host: string | null;
}

/** The replicas of the deployment named `name` (of any project the caller sees); none while it does not exist. */
export async function deploymentReplicas(api: Client, name: string): Promise<ReplicaSeen[]> {
  const list = (await api.get(`/v1/deployments?name=${encodeURIComponent(name)}`)).body.items as { id: string }[];
  if (list.length === 0) return [];
  return (await api.get(`/v1/deployments/${list[0]!.id}`)).body.instances as ReplicaSeen[];
}

/**
 * A container instance's spec as the agent hands it to the container driver,
 * for what creates containers without an agent (`createOptions`, the driver
 * itself): the given fields over the defaults an instance gets.
 */
export function driverSpec(
  s: Pick<InstanceSpec<ContainerFields>, 'id' | 'name' | 'project' | 'host' | 'image' | 'command' | 'env'> & {
    resources: { vcpus: number; memoryMib: number; diskGib: number };
    pidsLimit?: number;
  },
): InstanceSpec<ContainerFields> {
  return {
    args: [],
    pidsLimit: 4096,
    workingDir: '',
    user: '',
    ports: [],
    readOnlyRootfs: false,
    tmpfs: [],
    ...s,
  } as unknown as InstanceSpec<ContainerFields>;
}
