// The container driver: the Docker Engine API (dockerode) on a unix socket,
// served by Podman here and by Docker or Podman on users' hosts. Containers
// carry the instance id as a label, which is how the driver finds them again
// after an agent restart: it keeps no state of its own.
import Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { ApiError, conflict } from '../../lib/errors.ts';
import { sleep } from '../../lib/time.ts';
import type {
  Driver,
  ExecOptions,
  ExecSession,
  InstanceSpec,
  LogOptions,
  Observed,
  OutputChunk,
  PortBinding,
} from '../driver.ts';
import { demux } from './demux.ts';
import { ExitWatch } from './exit-watch.ts';
import type { ContainerFields } from './fields.ts';
import { assertImageRef } from '../../model/image-ref.ts';
import { containerCapabilities } from './capabilities.ts';
import { type BridgeIsolation, NftIsolation } from './isolation.ts';
import type { Capabilities } from '../../model/capabilities.ts';
import { splitImageRef } from './image-ref.ts';
import { PullProgress, type PullEvent } from './pull-progress.ts';
import type { RegistryAuth } from './registry-auth.ts';

export const INSTANCE_LABEL = 'io.strata.instance';
export const PROJECT_LABEL = 'io.strata.project';
export const HOST_LABEL = 'io.strata.host';
/** How long an exec's exit code may take to appear after its output ends. */
const EXEC_EXIT_WAIT_MS = 30_000;

export interface ContainerDriverOptions {
  /** Docker API socket, e.g. /run/podman/podman.sock or /var/run/docker.sock */
  socketPath: string;
  /** Registry credentials for pulls. */
  registryAuth?: RegistryAuth | undefined;
  /**
   * Rules of the agent's own that keep projects' bridges apart (isolation.ts);
   * by default nftables when the agent runs as root, none otherwise (then the
   * runtime's isolation alone holds).
   */
  isolation?: BridgeIsolation | null;
}

export class ContainerDriver implements Driver {
  readonly name = 'container' as const;
  readonly capabilities: Capabilities = containerCapabilities;
  readonly docker: Docker;
  private readonly o: ContainerDriverOptions;

  private readonly isolation: BridgeIsolation | null;
  private readonly exits: ExitWatch;

  constructor(o: ContainerDriverOptions) {
    this.o = o;
    this.docker = new Docker({ socketPath: o.socketPath });
    this.isolation = o.isolation !== undefined ? o.isolation : process.getuid?.() === 0 ? new NftIsolation() : null;
    this.exits = new ExitWatch(this.docker);
  }

  close(): void {
    this.exits.close();
  }

  async probe(): Promise<boolean> {
    try {
      await this.docker.ping();
      return true;
    } catch {
      return false;
    }
  }

  /** The container of an instance, if the runtime has one. */
  async find(id: string): Promise<Docker.ContainerInspectInfo | undefined> {
    const list = await this.docker.listContainers({ all: true, filters: { label: [`${INSTANCE_LABEL}=${id}`] } });
    const first = list[0];
    if (!first) return undefined;
    return this.docker.getContainer(first.Id).inspect();
  }

  /** Every instance id this runtime holds a container for on behalf of `hostId`. */
  async list(hostId: string): Promise<string[]> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: [INSTANCE_LABEL, `${HOST_LABEL}=${hostId}`] },
    });
    return list.map(c => c.Labels[INSTANCE_LABEL]).filter((v): v is string => typeof v === 'string');
  }

  async start(spec: InstanceSpec<ContainerFields>, progress?: (message: string) => void): Promise<void> {
    const existing = await this.find(spec.id);
    if (existing?.State.Running) return;
    if (existing) {
      await this.docker.getContainer(existing.Id).start();
      return;
    }
    await this.ensureImage(spec.image, progress);
    // Made under the project's lock: this agent's release of the project's
    // network cannot fall between the network and the container.
    const container = await this.withProject(spec.project, async () => {
      await this.ensureNetwork(spec.project);
      return this.docker.createContainer(createOptions(spec)).catch(async (err: unknown) => {
        // The network went between the check and the create (the project's last
        // container elsewhere on this runtime was just removed): make it again, once.
        if (!/network/i.test(runtimeMessage(err))) throw err;
        this.networks.delete(networkName(spec.project));
        await this.ensureNetwork(spec.project);
        return this.docker.createContainer(createOptions(spec));
      });
    });
    try {
      await container.start();
    } catch (err) {
      // A container that cannot start (no such command...) is removed so a
      // retry starts clean; the error says why.
      await container.remove({ force: true }).catch(() => undefined);
      throw new Error(`container failed to start: ${runtimeMessage(err)}`);
    }
  }

  async stop(id: string, graceSeconds: number): Promise<void> {
    const c = await this.find(id);
    if (!c?.State.Running) return;
    // A frozen process cannot take its signal: thaw it first.
    if (c.State.Paused)
      await this.docker
        .getContainer(c.Id)
        .unpause()
        .catch(() => undefined);
    await this.docker
      .getContainer(c.Id)
      .stop({ t: graceSeconds })
      .catch((err: unknown) => {
        if (statusOf(err) !== 304) throw err;
      });
  }

  async pause(id: string): Promise<void> {
    const c = await this.find(id);
    if (!c?.State.Running) throw conflict('the instance is not running');
    if (!c.State.Paused) await this.docker.getContainer(c.Id).pause();
  }

  async resume(id: string): Promise<void> {
    const c = await this.find(id);
    if (c?.State.Paused) await this.docker.getContainer(c.Id).unpause();
  }

  async destroy(id: string): Promise<void> {
    const c = await this.find(id);
    if (!c) return;
    await this.docker
      .getContainer(c.Id)
      .remove({ force: true, v: true })
      .catch((err: unknown) => {
        if (statusOf(err) !== 404) throw err;
      });
    const project = c.Config.Labels?.[PROJECT_LABEL];
    if (project) await this.releaseNetwork(project);
  }

  /**
   * Removes the project's network once no container of the project is left
   * on this runtime, so networks (and their subnets) do not pile up. One in
   * use (another agent on the same runtime just made a container there) stays.
   */
  private releaseNetwork(projectId: string): Promise<void> {
    // One check still waiting for the lock covers every container removed
    // before it runs: a rollout's removals do not queue a list each ahead of
    // the project's starts.
    const waiting = this.releasesWaiting.get(projectId);
    if (waiting) return waiting;
    const check = this.withProject(projectId, () => {
      this.releasesWaiting.delete(projectId);
      return this.releaseNetworkNow(projectId);
    });
    this.releasesWaiting.set(projectId, check);
    return check;
  }

  private readonly releasesWaiting = new Map<string, Promise<void>>();

  private readonly projectLocks = new Map<string, Promise<unknown>>();

  /** Runs `fn` after this driver's earlier network work for the project. */
  private withProject<T>(projectId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.projectLocks.get(projectId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.projectLocks.set(projectId, tail);
    void tail.then(() => {
      if (this.projectLocks.get(projectId) === tail) this.projectLocks.delete(projectId);
    });
    return run;
  }

  private async releaseNetworkNow(projectId: string): Promise<void> {
    const left = await this.docker.listContainers({ all: true, filters: { label: [`${PROJECT_LABEL}=${projectId}`] } });
    if (left.length > 0) return;
    const name = networkName(projectId);
    this.networks.delete(name);
    const bridge = await this.bridgeOf(name);
    const removed = await this.docker
      .getNetwork(name)
      .remove()
      .then(() => true)
      .catch(() => false);
    if (removed && bridge && this.isolation) await this.isolation.release(bridge);
  }

  /** The Linux bridge of a Podman network; undefined for Docker (whose own rules isolate its bridges) or a network gone. */
  private async bridgeOf(name: string): Promise<string | undefined> {
    const net = await call(this.docker, 'GET', `/v4.0.0/libpod/networks/${encodeURIComponent(name)}/json`).catch(
      () => undefined,
    );
    const bridge = (net as { network_interface?: unknown } | undefined)?.network_interface;
    return typeof bridge === 'string' && bridge ? bridge : undefined;
  }

  async inspect(id: string): Promise<Observed> {
    const c = await this.find(id);
    if (!c) return { state: 'absent' };
    if (c.State.Running)
      return { state: c.State.Paused ? 'paused' : 'running', address: addressOf(c), ports: bindingsOf(c) };
    const code = c.State.ExitCode;
    if (c.State.Status === 'created' || c.State.Status === 'configured') return { state: 'stopped', exitCode: null };
    if (code === 0) return { state: 'stopped', exitCode: 0 };
    return { state: 'failed', exitCode: code, message: exitMessage(code, c.State.Error) };
  }

  /** Resolves with the exit code when the instance's container exits. */
  async waitExit(id: string): Promise<number> {
    const c = await this.find(id);
    if (!c) throw new Error(`no container for ${id}`);
    return this.exits.wait(c.Id);
  }

  async logs(id: string, opts: LogOptions, signal: AbortSignal): Promise<AsyncIterable<OutputChunk>> {
    const c = await this.find(id);
    if (!c) throw new ApiError('conflict', 'the instance has no container on its host (it has not been started there)');
    const container = this.docker.getContainer(c.Id);
    const base = { stdout: true, stderr: true, ...(opts.tail !== undefined ? { tail: opts.tail } : {}) };
    if (!opts.follow) {
      // Without follow the Docker API answers the whole log at once.
      const all = (await container.logs({ ...base, follow: false })) as unknown as Buffer;
      return demux(oneChunk(all));
    }
    const stream = (await container.logs({ ...base, follow: true })) as NodeJS.ReadableStream & { destroy(): void };
    return followed(stream, signal);
  }

  async exec(id: string, o: ExecOptions): Promise<ExecSession> {
    const c = await this.find(id);
    if (!c?.State.Running) throw conflict('the instance is not running');
    const exec = await this.docker.getContainer(c.Id).exec({
      Cmd: o.command,
      AttachStdin: o.stdin,
      AttachStdout: true,
      AttachStderr: true,
      Tty: o.tty,
      ...(o.env ? { Env: envList(o.env) } : {}),
      ...(o.tty && o.cols && o.rows ? { ConsoleSize: [o.rows, o.cols] as [number, number] } : {}),
    });
    const stream = (await exec.start({ hijack: true, stdin: o.stdin, Tty: o.tty })) as Duplex;
    if (o.tty && o.cols && o.rows) await exec.resize({ h: o.rows, w: o.cols }).catch(() => undefined);
    return {
      // With a TTY the output is one raw stream; without, Docker multiplexes stdout and stderr.
      output: o.tty ? rawStdout(stream) : demux(stream as AsyncIterable<Buffer>),
      write: data => void stream.write(data),
      closeStdin: () => {
        // Half-close: the process sees end of input and may still write.
        const sock = stream as Duplex & { end(): void };
        sock.end();
      },
      resize: async (cols, rows) => {
        await exec.resize({ h: rows, w: cols });
      },
      exitCode: async () => {
        // The runtime records the exit code a moment after the output ends
        // (longer on a busy host): ask until it has, within a bound.
        const end = Date.now() + EXEC_EXIT_WAIT_MS;
        for (let wait = 10; ; wait = Math.min(wait * 2, 250)) {
          const info = await exec.inspect();
          if (!info.Running && info.ExitCode !== null) return info.ExitCode;
          if (Date.now() > end)
            throw new Error(`the exec process did not report an exit code within ${EXEC_EXIT_WAIT_MS / 1000} s`);
          await sleep(wait);
        }
      },
      close: () => stream.destroy(),
    };
  }

  private readonly networks = new Map<string, Promise<void>>();

  /**
   * The project's own network on this host, made on its first container:
   * containers of different projects do not reach each other. Podman
   * isolates only networks made with its `isolate` option, which its own API
   * takes (the Docker-compatible one drops it); Docker isolates user-defined
   * bridge networks from each other by default.
   */
  private ensureNetwork(projectId: string): Promise<void> {
    const name = networkName(projectId);
    let made = this.networks.get(name);
    if (!made) {
      made = this.createNetwork(name, projectId);
      this.networks.set(name, made);
      made.catch(() => this.networks.delete(name));
    }
    return made;
  }

  private async createNetwork(name: string, projectId: string): Promise<void> {
    const made = await this.makeNetwork(name, projectId);
    if (!this.isolation) return;
    const bridge = made ?? (await this.bridgeOf(name));
    if (!bridge) return;
    await this.isolation.guard(bridge);
    // Stale rules are tidied beside the start, not in its way: they hold no
    // bridge that exists, so waiting for them protects nothing.
    void this.isolation.sweep(() => this.liveBridges()).catch(() => undefined);
  }

  /** The bridges of every Podman network on this runtime. */
  private async liveBridges(): Promise<ReadonlySet<string>> {
    const nets = (await call(this.docker, 'GET', '/v4.0.0/libpod/networks/json')) as { network_interface?: string }[];
    return new Set(nets.flatMap(n => (n.network_interface ? [n.network_interface] : [])));
  }

  /** Makes the project's network unless it exists; answers the bridge it named when it made one on Podman. */
  private async makeNetwork(name: string, projectId: string): Promise<string | undefined> {
    try {
      await this.docker.getNetwork(name).inspect();
      return undefined;
    } catch (err) {
      if (statusOf(err) !== 404) throw new Error(`network ${name}: ${runtimeMessage(err)}`);
    }
    const labels = { [PROJECT_LABEL]: projectId };
    const bridge = freshBridgeName();
    try {
      await dial(this.docker, '/v4.0.0/libpod/networks/create', {
        name,
        driver: 'bridge',
        // A bridge name of its own, never reused: Podman's isolation rules
        // name bridges, and the clean-up of an exited container runs on its
        // own and may come after its network is gone; had a new network taken
        // the old bridge's name, that clean-up would delete the new network's
        // rules and open it to every other project.
        network_interface: bridge,
        options: { isolate: 'true' },
        labels,
      });
      return bridge;
    } catch (err) {
      if (statusOf(err) === 409) return undefined;
      if (statusOf(err) !== 404) throw new Error(`could not make network ${name}: ${runtimeMessage(err)}`);
      // Not Podman: Docker's own API.
      await this.docker.createNetwork({ Name: name, Driver: 'bridge', Labels: labels }).catch((e: unknown) => {
        if (statusOf(e) !== 409) throw new Error(`could not make network ${name}: ${runtimeMessage(e)}`);
      });
      return undefined;
    }
  }

  /** Pulls the image unless the runtime has it (with credentials and progress). */
  async ensureImage(ref: string, progress?: (message: string) => void): Promise<void> {
    // The API checks references; a driver never hands the runtime one that
    // could steer its request elsewhere (the Docker API puts it in the URL path).
    assertImageRef(ref);
    try {
      await this.docker.getImage(ref).inspect();
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw new Error(`image ${ref}: ${runtimeMessage(err)}`);
    }
    const { repo, tag } = splitImageRef(ref);
    const authconfig = this.o.registryAuth?.forImage(ref);
    progress?.(`pulling ${ref}`);
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await this.docker.pull(`${repo}:${tag}`, authconfig ? { authconfig } : {})) as NodeJS.ReadableStream;
    } catch (err) {
      throw new Error(`image ${ref} could not be pulled: ${runtimeMessage(err)}`);
    }
    const summary = new PullProgress();
    // Podman reports pull failures inside a 200 stream, so every event is read.
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err: Error | null, events: { error?: string; errorDetail?: { message?: string } }[]) => {
          const failed = err?.message ?? events.find(e => e.error || e.errorDetail)?.error;
          if (failed) reject(new Error(`image ${ref} could not be pulled: ${failed}`));
          else resolve();
        },
        (e: PullEvent) => {
          summary.add(e);
          progress?.(`pulling ${ref}: ${summary.summary()}`);
        },
      );
    });
    await this.docker
      .getImage(ref)
      .inspect()
      .catch((err: unknown) => {
        throw new Error(`image ${ref} could not be pulled: ${runtimeMessage(err)}`);
      });
  }
}

async function* followed(
  stream: NodeJS.ReadableStream & { destroy(): void },
  signal: AbortSignal,
): AsyncIterable<OutputChunk> {
  const stop = () => stream.destroy();
  signal.addEventListener('abort', stop, { once: true });
  try {
    yield* demux(stream as AsyncIterable<Buffer>);
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    signal.removeEventListener('abort', stop);
    stream.destroy();
  }
}

/** KEY=VALUE, as the Docker API takes an environment. */
const envList = (env: Record<string, string>): string[] => Object.entries(env).map(([k, v]) => `${k}=${v}`);

async function* oneChunk(buf: Buffer): AsyncIterable<Buffer> {
  yield buf;
}

async function* rawStdout(stream: AsyncIterable<Buffer>): AsyncIterable<OutputChunk> {
  for await (const data of stream) yield { stream: 'stdout', data };
}

/** The Docker API's create request for an instance. */
export function createOptions(spec: InstanceSpec<ContainerFields>): Docker.ContainerCreateOptions {
  const cmd = [...spec.command, ...spec.args];
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of spec.ports) {
    const key = `${p.containerPort}/${p.protocol ?? 'tcp'}`;
    exposed[key] = {};
    // An empty HostPort asks the runtime for any free port.
    bindings[key] ??= [];
    bindings[key].push({ HostIp: p.hostIp ?? '', HostPort: p.hostPort ? String(p.hostPort) : '' });
  }
  const tmpfs: Record<string, string> = {};
  for (const t of spec.tmpfs) tmpfs[t.path] = t.sizeMib ? `rw,size=${t.sizeMib}m` : 'rw';
  return {
    name: containerName(spec),
    Image: spec.image,
    ...(cmd.length > 0 ? { Cmd: cmd } : {}),
    Env: envList(spec.env),
    ...(spec.workingDir ? { WorkingDir: spec.workingDir } : {}),
    ...(spec.user ? { User: spec.user } : {}),
    ...(spec.ports.length > 0 ? { ExposedPorts: exposed } : {}),
    // The instance's labels go on the container too; Strata's own come last and win.
    Labels: { ...spec.labels, [INSTANCE_LABEL]: spec.id, [PROJECT_LABEL]: spec.project, [HOST_LABEL]: spec.host ?? '' },
    HostConfig: {
      NanoCpus: spec.resources.vcpus * 1e9,
      Memory: spec.resources.memoryMib * 1024 * 1024,
      // Without a swap limit equal to the memory limit a memory hog swaps instead of being OOM-killed.
      MemorySwap: spec.resources.memoryMib * 1024 * 1024,
      PidsLimit: spec.pidsLimit,
      NetworkMode: networkName(spec.project),
      ReadonlyRootfs: spec.readOnlyRootfs,
      ...(spec.ports.length > 0 ? { PortBindings: bindings } : {}),
      ...(spec.tmpfs.length > 0 ? { Tmpfs: tmpfs } : {}),
    },
  };
}

function addressOf(c: Docker.ContainerInspectInfo): string | null {
  // Docker and Podman also fill the legacy top-level IPAddress; the typings lack it.
  const direct = (c.NetworkSettings as { IPAddress?: string }).IPAddress;
  if (direct) return direct;
  for (const n of Object.values(c.NetworkSettings.Networks ?? {})) if (n.IPAddress) return n.IPAddress;
  return null;
}

function bindingsOf(c: Docker.ContainerInspectInfo): PortBinding[] {
  const out: PortBinding[] = [];
  const ports = (c.NetworkSettings.Ports ?? {}) as Record<string, { HostIp: string; HostPort: string }[] | null>;
  for (const [key, binds] of Object.entries(ports)) {
    const [port, proto = 'tcp'] = key.split('/');
    const protocol = proto === 'udp' || proto === 'sctp' ? proto : 'tcp';
    for (const b of binds ?? []) {
      out.push({ containerPort: Number(port), protocol, hostIp: b.HostIp || '0.0.0.0', hostPort: Number(b.HostPort) });
    }
  }
  return out.sort((a, b) => a.containerPort - b.containerPort || a.hostPort - b.hostPort);
}

/** Unique per runtime (instance names are unique per project only), readable in `podman ps`. */
export function containerName(spec: { id: string; name: string }): string {
  const suffix = spec.id.slice(-10);
  return spec.name.endsWith(`-${suffix}`) ? `strata-${spec.name}` : `strata-${spec.name}-${suffix}`;
}

/** Each project's network on a host. */
export const networkName = (projectId: string): string => `strata-${projectId}`;

/** A Linux interface name (at most 15 characters) that no earlier network had: 65 random bits. */
export const freshBridgeName = (): string => {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  return `st${Array.from(randomBytes(13), b => alphabet[b & 31]).join('')}`;
};

/** A POST with a JSON body to a path of the runtime's API that dockerode does not wrap. */
function dial(docker: Docker, path: string, body: Record<string, unknown>): Promise<unknown> {
  return call(docker, 'POST', path, body);
}

function call(docker: Docker, method: 'GET' | 'POST', path: string, body?: Record<string, unknown>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    docker.modem.dial(
      {
        path,
        method,
        options: body ?? {},
        statusCodes: { 200: true, 201: true, 404: 'not found', 409: 'conflict', 500: 'server error' },
      },
      (err, data) => (err ? reject(err) : resolve(data)),
    );
  });
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number } | null)?.statusCode;
}

function runtimeMessage(err: unknown): string {
  const e = err as { json?: { message?: string; cause?: string }; message?: string } | null;
  return e?.json?.message ?? e?.json?.cause ?? e?.message ?? String(err);
}

export function exitMessage(code: number, runtimeError?: string): string {
  if (runtimeError) return runtimeError;
  if (code === 137) return 'killed (exit 137): out of memory or SIGKILL';
  if (code === 127) return 'command not found (exit 127)';
  if (code === 126) return 'command not executable (exit 126)';
  return `exited with code ${code}`;
}
