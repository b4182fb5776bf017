// Fleet benchmark: the control plane at scale. One real server (a child
// process), a fleet of simulated hosts in a second process (`strata agent
// --sim N`: real agents with the in-process sim driver), and this process as
// the client: it creates the instances through the API and follows the event
// stream until every one runs.
//
//   node bench/fleet.ts [--hosts 1000] [--instances 10000] [--connections 64] [--record]
//
// What it reports: the time for the fleet to register, the create rate and
// its latency, the time from the first create until every instance runs, the
// latency of a light read during the load, and the server's and the fleet's
// CPU seconds and peak RSS. The reference is Nomad's published C1M run
// (1,000,000 containers on 5,000 hosts in under 5 minutes, about 3,750/s);
// it ran on a cluster, this runs on one 2-core machine with every process of
// the test on it.
import autocannon from 'autocannon';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { createParser } from 'eventsource-parser';
import { client, removeDir, startServerProcess, tempDir } from '../test/helpers.ts';
import { loadNote, machineLine, recordSection } from './record.ts';
import { readyHosts, type SimFleet, startSimFleet, tally } from './sim-fleet.ts';

const { values: flags } = parseArgs({
  options: {
    hosts: { type: 'string', default: '1000' },
    instances: { type: 'string', default: '10000' },
    connections: { type: 'string', default: '64' },
    record: { type: 'boolean', default: false },
  },
});
const hostCount = Number(flags.hosts);
const instanceCount = Number(flags.instances);
const connections = Number(flags.connections);
const loadBefore = os.loadavg();

/** CPU seconds (user + system) and peak RSS of a process, from /proc. */
function usage(pid: number): { cpuSeconds: number; peakRssMib: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSeconds: ticks / 100, peakRssMib: Number(hwm?.[1] ?? 0) / 1024 };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Counts instances that reach `running`, from the server's event stream. */
function followRunning(url: string, token: string, since: number, signal: AbortSignal) {
  const running = new Set<string>();
  let failed = 0;
  const waiters: (() => void)[] = [];
  const done = (async () => {
    const res = await fetch(`${url}/v1/events?follow=true&since=${since}`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      signal,
    });
    if (!res.ok || !res.body) throw new Error(`event stream answered ${res.status}`);
    const parser = createParser({
      onEvent: msg => {
        const e = JSON.parse(msg.data) as { type: string; resourceId: string; data: { to?: string } };
        if (e.type !== 'instance.state') return;
        if (e.data.to === 'running') running.add(e.resourceId);
        if (e.data.to === 'failed') failed++;
        for (const w of waiters.splice(0)) w();
      },
    });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  })();
  return {
    running,
    failed: () => failed,
    done,
    /** Resolves when `n` instances have run, with the time it happened. */
    async reach(n: number, timeoutMs: number): Promise<number> {
      const deadline = Date.now() + timeoutMs;
      while (running.size < n) {
        if (Date.now() > deadline) throw new Error(`only ${running.size} of ${n} instances ran (${failed} failed)`);
        await new Promise<void>(r => {
          waiters.push(r);
          setTimeout(r, 1000);
        });
      }
      return performance.now();
    },
  };
}

const dataDir = tempDir('strata-fleet-');
const server = await startServerProcess(dataDir, ['--token-rate', '0', '--max-connections', '4096']);
const api = client(server.url, server.adminToken);
const auth = { authorization: `Bearer ${server.adminToken}` };
let fleet: SimFleet | undefined;
const stopStream = new AbortController();
try {
  const serverBefore = usage(server.child.pid!);

  // 1. The fleet registers.
  const t0 = performance.now();
  fleet = await startSimFleet(server, { hosts: hostCount, dataDir });
  await until(`${hostCount} ready hosts`, async () => (await readyHosts(server)) >= hostCount, 300_000);
  const registerSeconds = (performance.now() - t0) / 1000;
  const fleetIdle = usage(fleet.child.pid!);
  console.error(`${hostCount} hosts ready in ${registerSeconds.toFixed(1)} s`);

  // 2. Creates through the API, with a light read beside them; the event stream counts what runs.
  const project = (await api.post('/v1/projects', { name: 'fleet' })).body.id as string;
  // No instance existed before: following from the start counts every one.
  const stream = followRunning(server.url, server.adminToken, 0, stopStream.signal);
  const serverAtLoad = usage(server.child.pid!);
  const fleetAtLoad = usage(fleet.child.pid!);
  const readLatencies: number[] = [];
  const readErrors: string[] = [];
  let loading = true;
  const reads = (async () => {
    while (loading) {
      const t = performance.now();
      try {
        const r = await api.get(`/v1/instances?project=${project}&limit=1`);
        if (r.status !== 200) readErrors.push(`answered ${r.status}`);
        else readLatencies.push(performance.now() - t);
      } catch (err) {
        readErrors.push(String((err as Error).cause ?? err));
      }
      await new Promise(r => setTimeout(r, 50));
    }
  })();
  // The server's open connections, sampled: agents hold two each.
  let peakConnections = 0;
  const port = new URL(server.url).port;
  const sampler = setInterval(() => {
    const out = spawnSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' }).stdout;
    peakConnections = Math.max(peakConnections, out.split('\n').filter(Boolean).length);
  }, 1000);
  const tCreate = performance.now();
  const created = await autocannon({
    url: `${server.url}/v1/instances`,
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ project, kind: 'container', image: 'localhost/strata/sim:1' }),
    connections,
    amount: instanceCount,
  });
  const createSeconds = (performance.now() - tCreate) / 1000;
  const bad = created.errors + created.timeouts + created.non2xx;
  console.error(
    `${instanceCount} creates in ${createSeconds.toFixed(1)} s (${Math.round(instanceCount / createSeconds)}/s), p99 ${created.latency.p99} ms, bad ${bad}`,
  );
  if (bad > 0) throw new Error(`${bad} creates failed`);
  const tAllRunning = await Promise.race([
    stream.reach(instanceCount, 120_000).catch(async err => {
      throw new Error(`${(err as Error).message}; the API says: ${JSON.stringify(await tally(server, project))}`);
    }),
    stream.done.then(() => {
      throw new Error('the event stream ended');
    }),
  ]);
  stream.done.catch(() => undefined);
  loading = false;
  clearInterval(sampler);
  await reads;
  if (readErrors.length > 0) throw new Error(`${readErrors.length} reads failed during the load: ${readErrors[0]}`);
  const allRunSeconds = (tAllRunning - tCreate) / 1000;
  const serverAfter = usage(server.child.pid!);
  const fleetAfter = usage(fleet.child.pid!);
  readLatencies.sort((a, b) => a - b);
  console.error(`all ${instanceCount} running ${allRunSeconds.toFixed(1)} s after the first create`);

  const rows: [string, string][] = [
    [`${hostCount} simulated hosts registered and ready`, `${registerSeconds.toFixed(1)} s`],
    [`${instanceCount.toLocaleString('en')} creates through the API`, `${createSeconds.toFixed(1)} s`],
    ['creates per second', Math.round(instanceCount / createSeconds).toLocaleString('en')],
    ['create latency p50 / p99', `${created.latency.p50} / ${created.latency.p99} ms`],
    [
      'a list read during the load, p50 / p99',
      `${percentile(readLatencies, 50).toFixed(0)} / ${percentile(readLatencies, 99).toFixed(0)} ms (${readLatencies.length} reads)`,
    ],
    ['first create until all run', `${allRunSeconds.toFixed(1)} s`],
    ['instances running per second, whole path', Math.round(instanceCount / allRunSeconds).toLocaleString('en')],
    [
      'server CPU seconds: fleet registration / creates until all run',
      `${(serverAtLoad.cpuSeconds - serverBefore.cpuSeconds).toFixed(1)} / ${(serverAfter.cpuSeconds - serverAtLoad.cpuSeconds).toFixed(1)}`,
    ],
    [
      'server CPU per instance, create to running',
      `${(((serverAfter.cpuSeconds - serverAtLoad.cpuSeconds) / instanceCount) * 1e6).toFixed(0)} us`,
    ],
    ['server connections, peak while loaded', String(peakConnections)],
    ['server peak RSS', `${serverAfter.peakRssMib.toFixed(0)} MiB`],
    [
      `fleet process (${hostCount} agents) CPU seconds: registration / load`,
      `${fleetIdle.cpuSeconds.toFixed(1)} / ${(fleetAfter.cpuSeconds - fleetAtLoad.cpuSeconds).toFixed(1)}`,
    ],
    ['fleet process peak RSS', `${fleetAfter.peakRssMib.toFixed(0)} MiB`],
    ['reference: Nomad C1M (published, a cluster)', '1,000,000 on 5,000 hosts in < 5 min: about 3,750/s'],
  ];
  const table = ['| what | result |', '|---|---:|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
  console.log(table);

  if (flags.record) {
    recordSection('fleet.ts', [
      machineLine(`Node ${process.version}`, loadNote(loadBefore)),
      `Command: \`node bench/fleet.ts --hosts ${hostCount} --instances ${instanceCount} --connections ${connections} --record\` (server, fleet and this client as three processes on this machine; creates by autocannon with ${connections} connections; "running" counted from the server's event stream).`,
      '',
      table,
      '',
    ]);
  }
} catch (err) {
  const log = fleet?.tail();
  if (log) console.error(`the fleet's last log lines:\n${log}`);
  process.exitCode = 1;
  console.error(err);
} finally {
  stopStream.abort();
  await fleet?.stop();
  await server.stop();
  removeDir(dataDir);
}
