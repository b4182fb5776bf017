// A simulated fleet (`strata agent --sim N`) as a child process beside a
// benchmark's server, its log in a file shown when the run fails.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { client, strataBin } from '../test/helpers.ts';

export interface SimFleet {
  child: ChildProcess;
  /** The last lines of the fleet's log, for a failed run. */
  tail(): string;
  stop(): Promise<void>;
}

export async function startSimFleet(
  server: { url: string; adminToken: string },
  o: { hosts: number; dataDir: string; extra?: string[] },
): Promise<SimFleet> {
  const api = client(server.url, server.adminToken);
  const token = await api.post('/v1/join-tokens', { description: 'simulated fleet for a benchmark' });
  if (token.status !== 201) throw new Error(`join token: ${token.status} ${JSON.stringify(token.body)}`);
  const log = join(o.dataDir, 'fleet.log');
  const child = spawn(
    strataBin,
    [
      'agent',
      '--sim',
      String(o.hosts),
      '--server',
      server.url,
      '--join-token',
      token.body.secret as string,
      '--data',
      join(o.dataDir, 'fleet'),
      '--log-level',
      'warn',
      ...(o.extra ?? []),
    ],
    // Warnings and errors only, to a file.
    { stdio: ['ignore', openSync(log, 'w'), 'inherit'] },
  );
  child.once('exit', code => {
    if (code !== null && code !== 0) console.error(`the fleet exited with ${code}`);
  });
  return {
    child,
    tail: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-20).join('\n') : ''),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise(r => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Hosts in state `ready`, every page. */
export async function readyHosts(server: { url: string; adminToken: string }): Promise<number> {
  return (await hostsByState(server)).ready ?? 0;
}

/** Hosts by state (ready, not-ready, down, ...), every page. */
export async function hostsByState(server: { url: string; adminToken: string }): Promise<Record<string, number>> {
  const api = client(server.url, server.adminToken);
  const n: Record<string, number> = {};
  let cursor: string | undefined;
  do {
    const page = await api.get(`/v1/hosts?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
    for (const h of page.body.items as { state: string }[]) n[h.state] = (n[h.state] ?? 0) + 1;
    cursor = page.body.nextCursor ?? undefined;
  } while (cursor);
  return n;
}

/** Instances of a project by state, every page. */
export async function tally(
  server: { url: string; adminToken: string },
  project: string,
): Promise<Record<string, number>> {
  const api = client(server.url, server.adminToken);
  const by: Record<string, number> = {};
  let cursor: string | undefined;
  do {
    const page = await api.get(`/v1/instances?project=${project}&limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
    for (const i of page.body.items as { state: string }[]) by[i.state] = (by[i.state] ?? 0) + 1;
    cursor = page.body.nextCursor ?? undefined;
  } while (cursor);
  return by;
}
