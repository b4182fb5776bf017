// The README's `strata run` lines, through the real CLI, a real server and a
// real agent on Podman: a published port answers on loopback, an HTTP health
// check makes the instance healthy, `--restart on-failure:3` restarts a failing
// command three times and then leaves it failed. And an instance's environment,
// which the agent must see, never shows in the event log.
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import {
  adminCli,
  freePort,
  removeDir,
  startContainerFixture,
  tempDir,
  until,
  type CliResult,
  type ContainerFixture,
} from './helpers.ts';

const BUSYBOX = '127.0.0.1:5000/library/busybox';
const HTTP_IMAGE = '127.0.0.1:5000/library/busybox-http';

let fx: ContainerFixture;
const dir = tempDir('strata-cli-run-');

let strata: (args: string[]) => Promise<CliResult>;

before(async () => {
  fx = await startContainerFixture('cli-run-node');
  strata = adminCli(fx.srv, dir);
});
after(async () => {
  await fx.close();
  removeDir(dir);
});

const idOf = (r: CliResult): string => {
  const m = /\((ins_\w+)\)/.exec(r.stdout);
  assert.ok(m, r.stdout);
  return m[1]!;
};

test('run --publish and --health-http: the page answers on the host port and the instance shows healthy', async () => {
  const port = await freePort();
  const id = idOf(
    await strata(['run', '--name', 'web', '--publish', `${port}:8080`, '--health-http', '8080/', HTTP_IMAGE]),
  );
  await fx.waitFor(id, 'running');
  const text = await until(`GET 127.0.0.1:${port}`, async () => {
    const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
    return res?.ok ? res.text() : undefined;
  });
  assert.match(text, /hello from strata/);
  const shown = await until('web shows healthy', async () => {
    const r = await strata(['instance', 'show', 'web']);
    return /^Health:\s+healthy/m.test(r.stdout) ? r.stdout : undefined;
  });
  assert.match(shown, /^State:\s+running/m);
});

test('run --restart on-failure:3: a command that exits 1 is restarted three times, then stays failed', async () => {
  const id = idOf(await strata(['run', BUSYBOX, '--restart', 'on-failure:3', '--', 'sh', '-c', 'exit 1']));
  type Event = { type: string; data: { to?: string; restart?: number; message?: string } };
  const events = async () => (await fx.admin.get(`/v1/events?resource=${id}&limit=1000`)).body.items as Event[];
  // The agent reports each exit with its decision: "restarting in N s" or not.
  // The last failure without one is the agent deciding not to restart again.
  const settled = await until(
    'three restarts, then failed with no restart to come',
    async () => {
      const i = (await fx.admin.get(`/v1/instances/${id}`)).body;
      if (i.restarts !== 3 || i.state !== 'failed') return undefined;
      const last = (await events()).filter(e => e.type === 'instance.state' && e.data.to === 'failed').at(-1);
      return last && !/restarting in/.test(last.data.message ?? '') ? i : undefined;
    },
    90_000,
  );
  assert.equal(settled.exitCode, 1);
  const all = await events();
  assert.deepEqual(
    all.filter(e => e.type === 'instance.state' && e.data.restart !== undefined).map(e => e.data.restart),
    [1, 2, 3],
  );
  assert.deepEqual(
    all
      .filter(e => e.type === 'instance.state' && e.data.to === 'failed')
      .map(e => /restarting in (\d+) s/.exec(e.data.message ?? '')?.[1] ?? 'final'),
    ['1', '2', '4', 'final'],
  );
  const shown = await strata(['instance', 'show', id]);
  assert.match(shown.stdout, /^Restart:\s+on-failure:3 \(3 so far\)/m);
  assert.match(shown.stdout, /^State:\s+failed/m);
});

test("an instance's environment reaches the process but never the event log", async () => {
  const secret = `envmark-${process.pid}-${Date.now()}`;
  const id = idOf(
    await strata(['run', '--name', 'env-probe', '-e', `PROBE=${secret}`, BUSYBOX, '--', 'sh', '-c', 'echo "$PROBE"']),
  );
  const first = await fx.waitFor(id, 'stopped');
  // The value reached the workload, so the agent was given it...
  const logs = await fx.admin.get(`/v1/instances/${id}/logs`);
  assert.equal(logs.status, 200);
  assert.ok(JSON.stringify(logs.body).includes(secret), 'the process printed its environment');
  // ...and run it once more, so the start and stop paths make their events too.
  const started = await fx.admin.post(`/v1/instances/${id}/start`);
  assert.ok(started.status < 300, JSON.stringify(started.body));
  await until('the second run ended', async () => {
    const i = (await fx.admin.get(`/v1/instances/${id}`)).body;
    return i.state === 'stopped' && i.startedAt !== first.startedAt ? i : undefined;
  });
  // Every event of the server, as the list and as the follow stream send them.
  const listed: unknown[] = [];
  for (let since = 0; ; ) {
    const page = (await fx.admin.get(`/v1/events?since=${since}&limit=1000`)).body;
    listed.push(...page.items);
    if (page.items.length === 0) break;
    since = page.nextSince;
  }
  const text = JSON.stringify(listed);
  assert.ok(text.includes(id), 'the scan covers the instance');
  assert.ok(!text.includes(secret), 'an event carries the environment');
  const ctl = new AbortController();
  const res = await fetch(`${fx.srv.url}/v1/events?follow=true&since=0`, {
    headers: { authorization: `Bearer ${fx.srv.adminToken}`, accept: 'text/event-stream' },
    signal: ctl.signal,
  });
  try {
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const lastSeq = (listed.at(-1) as { seq: number }).seq;
    let streamed = '';
    while (!new RegExp(`^id: ${lastSeq}$`, 'm').test(streamed)) {
      const chunk = await reader.read();
      assert.ok(!chunk.done, 'the stream ended early');
      streamed += decoder.decode(chunk.value, { stream: true });
    }
    assert.ok(streamed.includes(id));
    assert.ok(!streamed.includes(secret), 'a streamed event carries the environment');
  } finally {
    ctl.abort();
  }
});
