// Rolling upgrades: how long a deployment's v1 -> v2 takes against the ideal,
// and what the controllers spend on it at scale.
//
//   node bench/rollout.ts [--replicas 50] [--singles 5] [--sim-hosts 1000] [--sim-replicas 10000]
//                         [--sim-deployments 10] [--no-containers] [--no-sim] [--record]
//
// Containers (Podman): a server in this process (its store's events are read
// directly, timed as they commit) and a real agent process. One instance's
// start-to-healthy time is the median of standalone instances of the
// replicas' spec, measured first; then a deployment of N replicas (an HTTP
// health check every second) goes from v1 to v2 (an env var) with maxSurge
// 25%, maxUnavailable 0, minHealthySeconds 0, timed from the request until
// every replica of v2 is available. The ideal is ceil(N / surge) batches times
// the start-to-healthy time. The raw tool in the same run: the same create
// requests straight to Podman's Docker API, the same batches, each container
// polled over HTTP every 20 ms until it answers, old ones removed as their
// batch's new ones answer.
// Simulated fleet: a server in this process, `strata agent --sim` hosts in a
// child process, M replicas in D deployments (a deployment holds at most
// 1,000; no health check: ready means running), all going from v1 to v2 at
// once with the same strategy; hosts by state are sampled every 5 s meanwhile
// (a host heard from late is not-ready, and its replicas unavailable). The
// controllers' CPU is what the runner charges them: the CPU of the writes their
// passes made (each controller reads, plans and writes inside its writes;
// src/controllers/runner.ts).
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { pino } from 'pino';
import { createOptions, HOST_LABEL, networkName } from '../src/drivers/container/driver.ts';
import type { ControllerStats } from '../src/controllers/runner.ts';
import { type RunningServer, startServer } from '../src/server/server.ts';
import type { StoredEvent } from '../src/store/store.ts';
import { client, driverSpec, PODMAN_SOCKET, removeDir, tempDir, until } from '../test/helpers.ts';
import { loadNote, machineLine, recordSection } from './record.ts';
import { startLocalAgent } from './local-agent.ts';
import { hostsByState, readyHosts, type SimFleet, startSimFleet } from './sim-fleet.ts';

const { values: flags } = parseArgs({
  options: {
    replicas: { type: 'string', default: '50' },
    singles: { type: 'string', default: '5' },
    'sim-hosts': { type: 'string', default: '1000' },
    'sim-replicas': { type: 'string', default: '10000' },
    'sim-deployments': { type: 'string', default: '10' },
    containers: { type: 'boolean', default: true },
    sim: { type: 'boolean', default: true },
    record: { type: 'boolean', default: false },
  },
  allowNegative: true,
});
const replicas = Number(flags.replicas);
const singles = Number(flags.singles);
const simHosts = Number(flags['sim-hosts']);
const simReplicas = Number(flags['sim-replicas']);
const simDeployments = Number(flags['sim-deployments']);
const HTTP_IMAGE = '127.0.0.1:5000/library/busybox-http:latest';
const strategy = { maxSurge: '25%', maxUnavailable: 0, minHealthySeconds: 0 };
const surgeOf = (n: number) => Math.ceil(n * 0.25);

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? Number.NaN
    : s.length % 2
      ? s[(s.length - 1) / 2]!
      : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const sec = (ms: number) => (ms / 1000).toFixed(2);

interface Server {
  srv: RunningServer;
  url: string;
  adminToken: string;
  api: ReturnType<typeof client>;
  /** From now on, keeps every committed event (in the array answered) and when it arrived (`times`). */
  keep(): StoredEvent[];
  /** Resolves at the first event from now on that `test` accepts, with the time it committed here. */
  next(
    what: string,
    test: (e: StoredEvent, data: Record<string, unknown>) => boolean,
    timeoutMs: number,
  ): Promise<number>;
  times: Map<StoredEvent, number>;
  close(): Promise<void>;
}

async function server(dataDir: string, limits?: Parameters<typeof startServer>[0]['limits']): Promise<Server> {
  const srv = await startServer({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    logger: pino({ level: 'warn' }),
    ...(limits ? { limits } : {}),
  });
  const adminToken = readFileSync(srv.adminTokenFile, 'utf8').trim();
  const waiters = new Set<(e: StoredEvent, at: number) => void>();
  const seen: StoredEvent[] = [];
  const times = new Map<StoredEvent, number>();
  let keep = false;
  const stop = srv.store.onEvent(e => {
    const at = performance.now();
    if (keep) {
      seen.push(e);
      times.set(e, at);
    }
    for (const w of [...waiters]) w(e, at);
  });
  return {
    srv,
    url: srv.url,
    adminToken,
    api: client(srv.url, adminToken),
    keep() {
      keep = true;
      seen.length = 0;
      return seen;
    },
    times,
    next(what, test, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`));
        }, timeoutMs);
        const w = (e: StoredEvent, at: number) => {
          if (!test(e, JSON.parse(e.data) as Record<string, unknown>)) return;
          waiters.delete(w);
          clearTimeout(timer);
          resolve(at);
        };
        waiters.add(w);
      });
    },
    async close() {
      stop();
      await srv.close();
    },
  };
}

/** The client's calls, each sent up to three times when the connection fails (not when the server answers). */
function retrying(api: ReturnType<typeof client>): ReturnType<typeof client> {
  const again =
    <A extends unknown[], R>(f: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      for (let i = 1; ; i++) {
        try {
          return await f(...a);
        } catch (err) {
          if (i === 3 || !(err instanceof TypeError)) throw err;
        }
      }
    };
  return {
    get: again(api.get),
    post: again(api.post),
    put: again(api.put),
    patch: again(api.patch),
    delete: again(api.delete),
    call: again(api.call),
  } as ReturnType<typeof client>;
}

const phaseIs = (id: string, to: string) => (e: StoredEvent, d: Record<string, unknown>) =>
  e.type === 'deployment.phase' && e.resource_id === id && d.to === to;

/** The deployment complete after its next update: a `complete` of the revision before (a replica blinked) does not count. */
const completeAfterUpdate = (id: string) => {
  let updated = false;
  const complete = phaseIs(id, 'complete');
  return (e: StoredEvent, d: Record<string, unknown>) => {
    if (e.type === 'deployment.updated' && e.resource_id === id) updated = true;
    return updated && complete(e, d);
  };
};

function diff(a: Record<string, ControllerStats>, b: Record<string, ControllerStats>, name: string): ControllerStats {
  const x = a[name]!;
  const y = b[name]!;
  return { passes: y.passes - x.passes, busyMs: y.busyMs - x.busyMs, writeCpuMs: y.writeCpuMs - x.writeCpuMs };
}

/** One GET over HTTP: whether it answered 2xx (a container's server, from the host). */
function answers(url: string): Promise<boolean> {
  return new Promise(resolve => {
    const req = request(url, { timeout: 1000 }, res => {
      res.resume();
      resolve((res.statusCode ?? 500) < 400);
    });
    req.once('error', () => resolve(false));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

// ---------------------------------------------------------------- containers

interface ContainerResult {
  rows: [string, string][];
  verdict: string;
}

async function containers(): Promise<ContainerResult> {
  const docker = new Docker({ socketPath: PODMAN_SOCKET });
  const dir = tempDir('strata-bench-rollout-');
  const s = await server(dir);
  const { api } = s;
  // 64 vCPUs of instances per core: N replicas and their surge of 1 vCPU each fit the one host.
  const { agent, host } = await startLocalAgent(s, { dataDir: dir, name: 'rollout-node' });
  const project = (await api.get('/v1/projects/default')).body.id as string;
  const rawIds: string[] = [];
  let deploymentId: string | undefined;
  try {
    await docker.getImage(HTTP_IMAGE).inspect();
    const template = (version: string) => ({
      kind: 'container',
      image: HTTP_IMAGE,
      env: { VERSION: version },
      resources: { vcpus: 1, memoryMib: 32 },
      stopGraceSeconds: 1,
      healthCheck: { type: 'http', port: 8080, path: '/', intervalSeconds: 1 },
    });

    // 1. One instance's start-to-healthy time, standalone, Strata's and the raw tool's.
    const healthy = new Map<string, number>();
    const gone = new Set<string>();
    s.srv.store.onEvent(e => {
      if (e.type === 'instance.health' && (JSON.parse(e.data) as { to: string }).to === 'healthy')
        healthy.set(e.resource_id, performance.now());
      if (e.type === 'instance.deleted') gone.add(e.resource_id);
    });
    const single = async (): Promise<number> => {
      const t0 = performance.now();
      const res = await api.post('/v1/instances', { project: 'default', ...template('single') });
      if (res.status !== 201) throw new Error(`create answered ${res.status}: ${JSON.stringify(res.body)}`);
      const id = res.body.id as string;
      const at = await until(`${id} healthy`, async () => healthy.get(id), 60_000);
      await api.delete(`/v1/instances/${id}`);
      await until(`${id} deleted`, async () => (gone.has(id) ? true : undefined), 60_000);
      return at - t0;
    };
    let seq = 0;
    const spec = (version: string) =>
      driverSpec({
        id: `rollout_${process.pid}_${++seq}`,
        name: `rollout-raw-${process.pid}-${seq}`,
        project,
        // Not the agent's host: its containers are the agent's business, these are the bench's.
        host: '',
        image: HTTP_IMAGE,
        command: [],
        env: { VERSION: version },
        resources: { vcpus: 1, memoryMib: 32, diskGib: 0 },
      });
    /** Create + start through the Docker API, then GET every 20 ms until it answers: ms, and the container. */
    const rawStart = async (version: string): Promise<{ ms: number; id: string }> => {
      const t0 = performance.now();
      const c = await docker.createContainer(createOptions(spec(version)));
      rawIds.push(c.id);
      await c.start();
      const info = await c.inspect();
      const ip = info.NetworkSettings.Networks[networkName(project)]?.IPAddress;
      if (!ip) throw new Error(`container ${c.id} has no address on ${networkName(project)}`);
      while (!(await answers(`http://${ip}:8080/`))) await new Promise(r => setTimeout(r, 20));
      return { ms: performance.now() - t0, id: c.id };
    };
    const rawRemove = (id: string) =>
      docker
        .getContainer(id)
        .remove({ force: true })
        .then(() => rawIds.splice(rawIds.indexOf(id), 1))
        .catch(() => undefined);

    // One instance stays throughout: the project's network (which the raw
    // containers join too) goes with the project's last container.
    const anchor = await api.post('/v1/instances', {
      project: 'default',
      kind: 'container',
      image: HTTP_IMAGE,
      resources: { vcpus: 1, memoryMib: 32 },
    });
    if (anchor.status !== 201) throw new Error(`create answered ${anchor.status}: ${JSON.stringify(anchor.body)}`);
    await until('the first instance runs', async () =>
      (await api.get(`/v1/instances/${anchor.body.id}`)).body.state === 'running' ? true : undefined,
    );
    await single(); // warm-up, not counted
    const strataSingles: number[] = [];
    const rawSingles: number[] = [];
    for (let i = 0; i < singles; i++) {
      strataSingles.push(await single());
      const r = await rawStart('single');
      rawSingles.push(r.ms);
      await rawRemove(r.id);
    }
    const startToHealthy = median(strataSingles);
    const rawStartToAnswer = median(rawSingles);
    console.error(
      `start-to-healthy: Strata ${sec(startToHealthy)} s, raw ${sec(rawStartToAnswer)} s (medians of ${singles})`,
    );

    // 2. The deployment: v1 in place, then timed v1 -> v2.
    const surge = surgeOf(replicas);
    const batches = Math.ceil(replicas / surge);
    const created = await api.post('/v1/deployments', {
      project: 'default',
      name: 'web',
      replicas,
      template: template('v1'),
      strategy,
    });
    if (created.status !== 201) throw new Error(`deployment: ${created.status} ${JSON.stringify(created.body)}`);
    const id = created.body.id as string;
    deploymentId = id;
    const t1 = performance.now();
    const v1Done = await s.next('v1 complete', phaseIs(id, 'complete'), 600_000);
    console.error(`v1: ${replicas} replicas available in ${sec(v1Done - t1)} s`);

    const events = s.keep();
    let minAvailable = replicas;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const d = await api.get(`/v1/deployments/${id}`).catch(() => undefined);
        if (d?.status === 200) minAvailable = Math.min(minAvailable, d.body.status.availableReplicas as number);
        await new Promise(r => setTimeout(r, 100));
      }
    })();
    const statsBefore = s.srv.controllerStats();
    const done = s.next('v2 complete', completeAfterUpdate(id), 600_000);
    const t2 = performance.now();
    const put = await api.put(`/v1/deployments/${id}`, { replicas, template: template('v2'), strategy });
    if (put.status !== 200) throw new Error(`v2: ${put.status} ${JSON.stringify(put.body)}`);
    const v2Done = await done;
    sampling = false;
    await sampler;
    const statsAfter = s.srv.controllerStats();
    const rollout = v2Done - t2;
    const after = (await api.get(`/v1/deployments/${id}`)).body as {
      revision: number;
      status: { availableReplicas: number; updatedReplicas: number };
    };
    if (after.status.updatedReplicas !== replicas || after.status.availableReplicas !== replicas)
      throw new Error(`v2 complete with ${JSON.stringify(after.status)}`);

    // Where the time went: each new replica's steps, from the events of the rollout.
    const at = (e: StoredEvent) => s.times.get(e)!;
    const steps = new Map<string, Record<string, number>>();
    const mark = (e: StoredEvent, step: string) => {
      const r = steps.get(e.resource_id) ?? {};
      r[step] ??= at(e);
      steps.set(e.resource_id, r);
    };
    for (const e of events) {
      const d = JSON.parse(e.data) as { to?: string };
      if (e.type === 'instance.created') mark(e, 'created');
      else if (e.type === 'instance.scheduled') mark(e, 'scheduled');
      else if (e.type === 'instance.state' && d.to === 'running') mark(e, 'running');
      else if (e.type === 'instance.health' && d.to === 'healthy') mark(e, 'healthy');
    }
    // Replicas the controller counted as failed (exited, or unhealthy) during the upgrade: what may take availability down.
    const failed = events
      .filter(e => e.type === 'deployment.replica-failed')
      .map(e => JSON.parse(e.data) as { reason: string });
    const unhealthy = events.filter(
      e => e.type === 'instance.health' && (JSON.parse(e.data) as { to?: string }).to === 'unhealthy',
    );
    const fresh = [...steps.values()].filter(r => r.created !== undefined && r.healthy !== undefined);
    const step = (from: string, to: string) => median(fresh.map(r => r[to]! - r[from]!));
    const firstCreate = Math.min(...fresh.map(r => r.created!));
    const deployments = diff(statsBefore, statsAfter, 'deployments');
    const placer = diff(statsBefore, statsAfter, 'placer');

    // 3. The raw tool: the same batches straight to Podman.
    const old: string[] = [];
    for (let b = 0; b < batches; b++) {
      const n = Math.min(surge, replicas - b * surge);
      old.push(...(await Promise.all(Array.from({ length: n }, () => rawStart('v1')))).map(r => r.id));
    }
    const removals: Promise<unknown>[] = [];
    const t3 = performance.now();
    for (let b = 0; b < batches; b++) {
      const n = Math.min(surge, replicas - b * surge);
      await Promise.all(Array.from({ length: n }, () => rawStart('v2')));
      removals.push(...old.splice(0, n).map(rawRemove));
    }
    const raw = performance.now() - t3;
    await Promise.all(removals);

    const ideal = batches * startToHealthy;
    const rawIdeal = batches * rawStartToAnswer;
    const ratio = rollout / ideal;
    const rows: [string, string][] = [
      [
        `one instance's start-to-healthy, Strata (median of ${singles}; POST until its health check passed)`,
        `${sec(startToHealthy)} s`,
      ],
      [
        `one container's start-to-answer, bare Podman API (median of ${singles}; create + start until it answers HTTP)`,
        `${sec(rawStartToAnswer)} s`,
      ],
      [`v1: ${replicas} replicas created until all available (not timed against an ideal)`, `${sec(v1Done - t1)} s`],
      [
        `**v1 -> v2 rolling upgrade of ${replicas} replicas, maxSurge 25% (${surge}), maxUnavailable 0: PUT until all of v2 available**`,
        `**${sec(rollout)} s**`,
      ],
      [`ideal: ${batches} batches x one instance's start-to-healthy`, `${sec(ideal)} s`],
      ['**rollout / ideal**', `**${ratio.toFixed(2)}x** (target <= 1.2x)`],
      ['fewest replicas available, sampled every 100 ms during the upgrade', String(minAvailable)],
      [
        'replicas turned unhealthy / counted as failed during the upgrade',
        `${unhealthy.length} / ${failed.length}${failed[0] ? ` (first: ${failed[0].reason.slice(0, 120).replaceAll('|', '/')})` : ''}`,
      ],
      [
        `bare Podman API, the same ${batches} batches of ${surge} (each batch's containers answering, old ones removed meanwhile)`,
        `${sec(raw)} s`,
      ],
      [
        `bare Podman API: ideal ${batches} x its start-to-answer; ratio`,
        `${sec(rawIdeal)} s; ${(raw / rawIdeal).toFixed(2)}x`,
      ],
      ['Strata rollout / bare Podman batches', `${(rollout / raw).toFixed(2)}x`],
      [
        'a new replica, medians: PUT to the first create / create to scheduled / scheduled to running / running to healthy',
        `${sec(firstCreate - t2)} / ${sec(step('created', 'scheduled'))} / ${sec(step('scheduled', 'running'))} / ${sec(step('running', 'healthy'))} s`,
      ],
      [
        'controllers during the upgrade: deployments passes, CPU of their writes / placer passes, CPU',
        `${deployments.passes}, ${deployments.writeCpuMs.toFixed(0)} ms / ${placer.passes}, ${placer.writeCpuMs.toFixed(0)} ms`,
      ],
    ];
    const verdict = `Rolling upgrade of ${replicas} containers: ${sec(rollout)} s against an ideal of ${sec(ideal)} s (${batches} x ${sec(startToHealthy)} s): ${ratio.toFixed(2)}x, target <= 1.2x: ${ratio <= 1.2 ? 'met' : 'not met'}.`;
    return { rows, verdict };
  } finally {
    // The agent tears down what is deleted (and with the last container, the project's network).
    if (deploymentId) await api.delete(`/v1/deployments/${deploymentId}`);
    const list = async () => (await api.get('/v1/instances?project=default&limit=1000')).body.items as { id: string }[];
    for (const i of await list()) await api.delete(`/v1/instances/${i.id}`);
    await until('the instances are gone', async () => ((await list()).length === 0 ? true : undefined), 120_000).catch(
      err => console.error(String(err)),
    );
    agent.kill('SIGKILL');
    await new Promise(r => agent.once('exit', r));
    // The agent's containers left (it was killed) and the bench's own.
    const left = await docker.listContainers({ all: true, filters: { label: [`${HOST_LABEL}=${host.id}`] } });
    for (const c of [...left.map(c => c.Id), ...rawIds])
      await docker
        .getContainer(c)
        .remove({ force: true })
        .catch(() => undefined);
    await docker
      .getNetwork(networkName(project))
      .remove()
      .catch(() => undefined);
    await s.close();
    removeDir(dir);
  }
}

// ---------------------------------------------------------------- simulated fleet

/**
 * Hosts by state every 5 s while a phase runs, each sample on stderr: a host
 * whose heartbeats come late goes not-ready (then down), its replicas count as
 * unavailable, and a rollout waits for them. `worst()`: the most not-ready
 * and down hosts of one sample, as `N / M`.
 */
function watchHosts(s: { url: string; adminToken: string }, phase: string, since: number) {
  let notReady = 0;
  let down = 0;
  let stopped = false;
  void (async () => {
    while (!stopped) {
      await new Promise(r => setTimeout(r, 5000));
      if (stopped) break;
      const n = await hostsByState(s).catch(() => undefined);
      if (!n) continue;
      if ((n['not-ready'] ?? 0) + (n.down ?? 0) > notReady + down) {
        notReady = n['not-ready'] ?? 0;
        down = n.down ?? 0;
      }
      console.error(`${phase} at ${sec(performance.now() - since)} s: hosts ${JSON.stringify(n)}`);
    }
  })();
  return {
    stop: () => {
      stopped = true;
    },
    worst: () => `${notReady} / ${down}`,
  };
}

async function simulated(): Promise<[string, string][]> {
  const dir = tempDir('strata-bench-rollout-sim-');
  const s = await server(dir, { tokenRequestsPerSecond: 0, tokenBurst: 0, maxConnections: 8192 });
  let fleet: SimFleet | undefined;
  try {
    const t0 = performance.now();
    fleet = await startSimFleet(s, { hosts: simHosts, dataDir: dir });
    // Counted once a second: listing every host is work for the server that runs beside this.
    for (let ready = 0; ready < simHosts; ready = await readyHosts(s).catch(() => ready)) {
      if (performance.now() - t0 > 300_000) throw new Error(`only ${ready} of ${simHosts} hosts ready after 300 s`);
      await new Promise(r => setTimeout(r, 1000));
    }
    console.error(`${simHosts} simulated hosts ready in ${sec(performance.now() - t0)} s`);
    // The server holds a connection or two for each host: a request of this
    // client may find its kept-alive connection reset, and is sent again.
    const api = retrying(s.api);
    await api.post('/v1/projects', { name: 'fleet' });
    const template = (version: string) => ({
      kind: 'container',
      image: 'localhost/strata/sim:1',
      env: { VERSION: version },
    });
    // Deployments hold at most 1,000 replicas each (MAX_REPLICAS): the fleet's replicas are split among several.
    const each = Math.ceil(simReplicas / simDeployments);
    const sizes = Array.from({ length: simDeployments }, (_, i) => Math.min(each, simReplicas - i * each));
    const t1 = performance.now();
    const ids: string[] = [];
    const v1Done: Promise<number>[] = [];
    for (const [i, n] of sizes.entries()) {
      const created = await api.post('/v1/deployments', {
        project: 'fleet',
        name: `sim-${i + 1}`,
        replicas: n,
        template: template('v1'),
        strategy,
      });
      // A 409 is this create sent again after its answer was lost.
      const id =
        created.status === 409
          ? ((await api.get(`/v1/deployments?project=fleet&name=sim-${i + 1}`)).body.items[0]?.id as string)
          : (created.body.id as string);
      if (created.status !== 201 && !id)
        throw new Error(`deployment: ${created.status} ${JSON.stringify(created.body)}`);
      ids.push(id);
      const complete = s.next(`sim-${i + 1} v1 complete`, phaseIs(id, 'complete'), 300_000);
      complete.catch(() => undefined); // awaited below, with the others
      v1Done.push(complete);
    }
    const v1Hosts = watchHosts(s, 'v1', t1);
    const v1 = Math.max(...(await Promise.all(v1Done).finally(() => v1Hosts.stop()))) - t1;
    console.error(`v1: ${simReplicas} replicas available in ${sec(v1)} s`);

    const statsBefore = s.srv.controllerStats();
    const cpuBefore = process.cpuUsage();
    const done = ids.map((id, i) => s.next(`sim-${i + 1} v2 complete`, completeAfterUpdate(id), 300_000));
    for (const d of done) d.catch(() => undefined); // awaited below, together
    const t2 = performance.now();
    await Promise.all(
      ids.map(async (id, i) => {
        const put = await api.put(`/v1/deployments/${id}`, {
          replicas: sizes[i],
          template: template('v2'),
          strategy,
        });
        if (put.status !== 200) throw new Error(`v2: ${put.status} ${JSON.stringify(put.body)}`);
      }),
    );
    const v2Hosts = watchHosts(s, 'v2', t2);
    const rollout = Math.max(...(await Promise.all(done).finally(() => v2Hosts.stop()))) - t2;
    const cpu = process.cpuUsage(cpuBefore);
    const statsAfter = s.srv.controllerStats();
    console.error(`v2: rolled out in ${sec(rollout)} s`);
    const t3 = performance.now();
    const detail = await api.get(`/v1/deployments/${ids[0]}`);
    const detailMs = performance.now() - t3;
    for (const [i, id] of ids.entries()) {
      const { status } = (await api.get(`/v1/deployments/${id}`)).body as {
        status: { availableReplicas: number; updatedReplicas: number };
      };
      if (status.updatedReplicas !== sizes[i] || status.availableReplicas !== sizes[i])
        throw new Error(`sim-${i + 1}: v2 complete with ${JSON.stringify(status)}`);
    }
    const rss = process.memoryUsage().rss;
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    const deployments = diff(statsBefore, statsAfter, 'deployments');
    const placer = diff(statsBefore, statsAfter, 'placer');
    const perReplica = (ms: number) => `${((ms * 1000) / simReplicas).toFixed(0)} us`;
    const k = simReplicas.toLocaleString('en');
    return [
      [
        `${simHosts.toLocaleString('en')} simulated hosts, ${simDeployments} deployments of ${each.toLocaleString('en')} replicas: v1 created until all available`,
        `${sec(v1)} s`,
      ],
      [
        `**v1 -> v2 rolling upgrade of ${k} replicas (the ${simDeployments} deployments at once), maxSurge 25% (${surgeOf(each)} each), maxUnavailable 0: the PUTs until all of v2 available**`,
        `**${sec(rollout)} s**`,
      ],
      [
        'hosts not heard from in time (not-ready / down) at the worst sample, every 5 s: during v1 / during the upgrade',
        `${v1Hosts.worst()} / ${v2Hosts.worst()}`,
      ],
      [
        '**deployments controller, CPU of its writes per replica upgraded**',
        `**${perReplica(deployments.writeCpuMs)}** (${deployments.passes} passes, ${sec(deployments.busyMs)} s of passes, ${sec(deployments.writeCpuMs)} s CPU)`,
      ],
      [
        '**placer, CPU of its writes per replica upgraded**',
        `**${perReplica(placer.writeCpuMs)}** (${placer.passes} passes, ${sec(placer.busyMs)} s of passes, ${sec(placer.writeCpuMs)} s CPU)`,
      ],
      [
        "server process (API, agents' reports, controllers, this client) CPU per replica upgraded",
        perReplica((cpu.user + cpu.system) / 1000),
      ],
      [
        'server process RSS at the end / peak',
        `${(rss / 2 ** 20).toFixed(0)} / ${(Math.max(rss, Number(hwm?.[1] ?? 0) * 1024) / 2 ** 20).toFixed(0)} MiB`,
      ],
      [
        `GET /v1/deployments/ID with its ${each.toLocaleString('en')} replicas, after the upgrade`,
        `${detailMs.toFixed(0)} ms, ${(JSON.stringify(detail.body).length / 2 ** 20).toFixed(1)} MiB`,
      ],
    ];
  } catch (err) {
    const log = fleet?.tail();
    if (log) console.error(`the fleet's last log lines:\n${log}`);
    throw err;
  } finally {
    await fleet?.stop();
    await s.close();
    removeDir(dir);
  }
}

// ---------------------------------------------------------------- run

const loadBefore = os.loadavg();
const containerResult = flags.containers ? await containers() : undefined;
// A fleet that does not get through on this machine is said so, beside what the containers printed.
const simRows = flags.sim
  ? await simulated().catch((err: unknown): [string, string][] => {
      console.error(err);
      return [
        [`simulated fleet: ${simHosts} hosts, ${simReplicas} replicas`, `did not complete: ${(err as Error).message}`],
      ];
    })
  : [];
const loadAfter = os.loadavg();
const rows = [...(containerResult?.rows ?? []), ...simRows];
const table = ['| what | result |', '|---|---:|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
console.log(table);
if (containerResult) console.log(containerResult.verdict);

if (flags.record) {
  const podman = flags.containers ? [`Podman's Docker API on ${PODMAN_SOCKET}`] : [];
  const parts = [
    `--replicas ${replicas} --singles ${singles} --sim-hosts ${simHosts} --sim-replicas ${simReplicas} --sim-deployments ${simDeployments}`,
    flags.containers ? '' : ' --no-containers',
    flags.sim ? '' : ' --no-sim',
  ].join('');
  recordSection('rollout.ts', [
    machineLine(`Node ${process.version}`, ...podman, loadNote(loadBefore, loadAfter)),
    `Command: \`node bench/rollout.ts ${parts} --record\` (server in the bench's process, its events timed as they commit; containers: ${HTTP_IMAGE}, 1 vCPU, 32 MiB, an HTTP health check every second, one agent process on Podman; simulated: \`strata agent --sim ${simHosts}\` in a child process, ${simDeployments} deployments upgraded at once, no health check; strategy maxSurge 25%, maxUnavailable 0, minHealthySeconds 0; the containers first, then the fleet, in one process: its peak RSS holds both).`,
    '',
    table,
    '',
    ...(containerResult ? [containerResult.verdict, ''] : []),
  ]);
  console.error('recorded in bench/RESULTS.md');
}
