// Logs and exec through the server, for real: a server, an agent process,
// Podman, and the CLI as a user runs it (with a pseudo-terminal from
// util-linux `script` for `exec -it`).
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { Channel, frame, parseFrame, parseStatus } from '../src/lib/stream-frames.ts';
import {
  client,
  cliEnv,
  onTerminal,
  runCli,
  startContainerFixture,
  strataBin,
  tempDir,
  until,
  type Client,
  type CliResult,
  type ContainerFixture,
  type TestServer,
} from './helpers.ts';

let fx: ContainerFixture;
let srv: TestServer;
let admin: Client;
const tokens: Record<string, string> = {};
const cliHome = tempDir('strata-streams-cli-');

/** A logs answer as text (the test client parses a one-line answer as JSON). */
const text = (body: unknown): string => (typeof body === 'string' ? body : JSON.stringify(body));
const inState = (id: string, state: string) => () => fx.waitFor(id, state);
const run = (command: string[]) => fx.run({ command });

/** The CLI as a user, optionally with standard input. */
function strata(args: string[], opts: { input?: string; token?: string } = {}): Promise<CliResult> {
  return runCli(
    args,
    cliEnv(`${cliHome}/config.yaml`, cliHome, { STRATA_URL: srv.url, STRATA_TOKEN: opts.token ?? srv.adminToken }),
    opts.input,
  );
}

before(async () => {
  fx = await startContainerFixture('streams-node');
  srv = fx.srv;
  admin = fx.admin;
  assert.equal((await admin.post('/v1/projects', { name: 'other' })).status, 201);
  for (const [name, project, role] of [
    ['rita', 'default', 'reader'],
    ['otto', 'other', 'admin'],
  ] as const) {
    assert.equal((await admin.post('/v1/users', { name, projects: [{ project, role }] })).status, 201);
    tokens[name] = (await admin.post('/v1/tokens', { name: `${name}-t`, user: name })).body.secret;
  }
});

after(() => fx.close());

test('logs: stdout and stderr through the API, and the CLI prints each to its own stream', async () => {
  const id = await run(['sh', '-c', 'echo to-out; echo to-err >&2; sleep 600']);
  await inState(id, 'running')();
  const lines = await until('both lines logged', async () => {
    const res = await admin.get(`/v1/instances/${id}/logs`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/x-ndjson/);
    const t = text(res.body);
    return t.includes('to-err') && t.includes('to-out') ? t : undefined;
  });
  const chunks = lines
    .trim()
    .split('\n')
    .map(l => JSON.parse(l) as { stream: string; data: string });
  assert.ok(chunks.some(c => c.stream === 'stdout' && c.data.includes('to-out')));
  assert.ok(chunks.some(c => c.stream === 'stderr' && c.data.includes('to-err')));

  const cli = await strata(['logs', id]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(cli.stdout, 'to-out\n');
  assert.equal(cli.stderr, 'to-err\n');

  const tail = await admin.get(`/v1/instances/${id}/logs?tail=1`);
  assert.equal(tail.status, 200);
  assert.equal(text(tail.body).trim().split('\n').length, 1, 'tail=1 gives one line');
});

test('logs -f streams output as it comes and ends when the instance stops', async () => {
  // Each line waits for a file the test creates only once it has seen the line
  // before, so a server that held output back would never get the next.
  const id = await run([
    'sh',
    '-c',
    'for i in 1 2 3; do echo line$i; until [ -e /tmp/go$i ]; do sleep 0.05; done; done',
  ]);
  await inState(id, 'running')();
  const env = cliEnv(`${cliHome}/config.yaml`, cliHome, { STRATA_URL: srv.url, STRATA_TOKEN: srv.adminToken });
  const cli = spawn(strataBin, ['logs', '-f', id], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const seen: (() => void)[] = [];
  cli.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const check of seen) check();
  });
  cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>(r => cli.once('close', r));
  try {
    for (const i of [1, 2, 3]) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`line${i} never came; got ${JSON.stringify(stdout)}`)), 30_000);
        const check = () => {
          if (!stdout.includes(`line${i}\n`)) return;
          clearTimeout(timer);
          resolve();
        };
        seen.push(check);
        check();
      });
      assert.equal(stdout, ['line1\n', 'line2\n', 'line3\n'].slice(0, i).join(''));
      const go = await strata(['exec', id, '--', 'touch', `/tmp/go${i}`]);
      assert.equal(go.code, 0, go.stderr);
    }
    assert.equal(await exited, 0, stderr);
    assert.equal(stdout, 'line1\nline2\nline3\n');
  } finally {
    cli.kill();
  }
});

test('exec: output, stderr and the exit code; stdin from a pipe', async () => {
  const id = await run(['sleep', '600']);
  await inState(id, 'running')();

  const r = await strata(['exec', id, '--', 'sh', '-c', 'echo hi; echo oops >&2; exit 7']);
  assert.equal(r.code, 7, r.stderr);
  assert.equal(r.stdout, 'hi\n');
  assert.equal(r.stderr, 'oops\n');

  const piped = await strata(['exec', '-i', id, '--', 'sh'], {
    input: 'echo from-stdin; read x; echo "got $x"; exit 4\n',
  });
  assert.equal(piped.code, 4, piped.stderr);
  assert.equal(piped.stdout, 'from-stdin\ngot \n');

  const cat = await strata(['exec', '-i', id, '--', 'cat'], { input: 'line one\nline two\n' });
  assert.equal(cat.code, 0, cat.stderr);
  assert.equal(cat.stdout, 'line one\nline two\n', 'end of input reaches the process');

  const missing = await strata(['exec', id, '--', 'no-such-command']);
  assert.notEqual(missing.code, 0, 'a command that does not exist fails');
  assert.match(missing.stderr + missing.stdout, /no-such-command|not found|no such file/i);
});

test('exec -it gives an interactive shell on a terminal', async () => {
  const id = await run(['sleep', '600']);
  await inState(id, 'running')();
  // `script` runs the CLI on a pseudo-terminal, as a user's shell would.
  const env = cliEnv(`${cliHome}/config.yaml`, cliHome, { STRATA_URL: srv.url, STRATA_TOKEN: srv.adminToken });
  const term = onTerminal(`${strataBin} exec -it ${id} -- sh`, env);
  // busybox's prompt, "/ # ", may be followed by terminal queries.
  await term.shows('# ');
  term.type('tty && echo "answer=$((6*7))"\r');
  await term.shows('answer=42');
  assert.match(term.output(), /\/dev\/pts\/\d+/, 'the shell has a terminal');
  term.type('exit 5\r');
  assert.equal(await term.exited, 5, term.output());
});

test('who may stream: readers read logs but cannot exec; other projects see 404; bad requests change nothing', async () => {
  const id = await run(['sleep', '600']);
  await inState(id, 'running')();
  const reader = client(srv.url, tokens.rita);
  assert.equal((await reader.get(`/v1/instances/${id}/logs`)).status, 200);
  const outsider = client(srv.url, tokens.otto);
  const hidden = await outsider.get(`/v1/instances/${id}/logs`);
  assert.equal(hidden.status, 404);
  assert.equal(hidden.body.error.code, 'not_found');

  const denied = await strata(['exec', id, '--', 'true'], { token: tokens.rita });
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /member role/);
  const hiddenExec = await strata(['exec', id, '--', 'true'], { token: tokens.otto });
  assert.equal(hiddenExec.code, 1);
  assert.match(hiddenExec.stderr, /not found/);

  const plain = await admin.get(`/v1/instances/${id}/exec?command=true`);
  assert.equal(plain.status, 400, 'exec needs a WebSocket');
  assert.match(plain.body.error.message, /WebSocket/);
  const noCommand = await wsError(`/v1/instances/${id}/exec`, srv.adminToken);
  assert.equal(noCommand.status, 400);

  const stopped = await run(['true']);
  await inState(stopped, 'stopped')();
  const notRunning = await wsError(`/v1/instances/${stopped}/exec?command=true`, srv.adminToken);
  assert.equal(notRunning.status, 409);
  assert.match(notRunning.body.error.message, /not running/);
  // A stopped container's output stays readable.
  assert.equal((await admin.get(`/v1/instances/${stopped}/logs`)).status, 200);
});

test('exec over the raw WebSocket protocol: frames in, frames out, the exit code last', async () => {
  const id = await run(['sleep', '600']);
  await inState(id, 'running')();
  const url = `${srv.url.replace('http', 'ws')}/v1/instances/${id}/exec?command=sh&command=-c&command=${encodeURIComponent('read a; echo "[$a]"; exit 3')}&stdin=true`;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${srv.adminToken}` } });
  const frames: { channel: number; text: string }[] = [];
  const closed = new Promise<void>(r => ws.once('close', () => r()));
  ws.on('message', (d: Buffer) => {
    const f = parseFrame(d);
    if (f) frames.push({ channel: f.channel, text: f.payload.toString() });
  });
  await new Promise(r => ws.once('open', r));
  ws.send(frame(Channel.stdin, 'abc\n'));
  await closed;
  assert.deepEqual(
    frames
      .filter(f => f.channel === Channel.stdout)
      .map(f => f.text)
      .join(''),
    '[abc]\n',
  );
  const last = frames.at(-1)!;
  assert.equal(last.channel, Channel.status);
  assert.deepEqual(parseStatus(Buffer.from(last.text)), { exitCode: 3 });
});

test('streams work again after the agent is killed and restarted', async () => {
  const id = await run(['sh', '-c', 'echo survivor; sleep 600']);
  await inState(id, 'running')();
  fx.agent.kill('SIGKILL');
  await new Promise(r => fx.agent.once('exit', r));
  // Asked while the agent is away, the server waits for it to come back.
  const asked = admin.get(`/v1/instances/${id}/logs`);
  fx.restartAgent();
  const again = await asked;
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.match(text(again.body), /survivor/);
  const r = await strata(['exec', id, '--', 'echo', 'still-here']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'still-here\n');
});

test('what a kind cannot do is a 400 at once: an exec health check on a VM at creation, exec on a VM, a console on a container', async () => {
  const before = (await admin.get('/v1/instances?limit=1000')).body.items.length;
  const vmSpec = { project: 'default', kind: 'vm', image: 'alpine', command: ['sleep', '600'] };
  const refused = await admin.post('/v1/instances', {
    ...vmSpec,
    healthCheck: { type: 'exec', command: ['true'] },
  });
  assert.equal(refused.status, 400, JSON.stringify(refused.body));
  assert.equal(refused.body.error.code, 'invalid_request');
  assert.match(
    refused.body.error.message,
    /^body\.healthCheck\.type exec health checks are not supported for kind vm \(it takes http and tcp checks\)/,
  );
  assert.equal((await admin.get('/v1/instances?limit=1000')).body.items.length, before, 'nothing was created');

  // Held back by a constraint no host meets: the answer does not wait for a host.
  const nowhere = { constraints: [{ key: 'no-such-label', op: 'exists' }] };
  const vm = await admin.post('/v1/instances', { ...vmSpec, ...nowhere, healthCheck: { type: 'tcp', port: 22 } });
  assert.equal(vm.status, 201, JSON.stringify(vm.body));
  const exec = await wsError(`/v1/instances/${vm.body.id}/exec?command=true`, srv.adminToken);
  assert.equal(exec.status, 400);
  assert.match(exec.body.error.message, /^exec is not supported for kind vm .*a VM has its serial console/);
  const cli = await strata(['exec', vm.body.id, '--', 'true']);
  assert.equal(cli.code, 1);
  assert.match(cli.stderr, /exec is not supported for kind vm/);

  const box = await admin.post('/v1/instances', {
    project: 'default',
    kind: 'container',
    image: 'busybox',
    ...nowhere,
  });
  assert.equal(box.status, 201, JSON.stringify(box.body));
  const attach = await wsError(`/v1/instances/${box.body.id}/console`, srv.adminToken);
  assert.equal(attach.status, 400);
  assert.match(attach.body.error.message, /^console is not supported for kind container .*use strata exec/);
  for (const id of [vm.body.id, box.body.id]) assert.equal((await admin.delete(`/v1/instances/${id}`)).status, 204);
});

/** The HTTP error answer to a WebSocket upgrade. */
function wsError(
  path: string,
  token: string,
): Promise<{ status: number; body: { error: { code: string; message: string } } }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${srv.url.replace('http', 'ws')}${path}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }));
    });
    ws.once('error', () => undefined);
  });
}

test('run --wait shows the start and returns once running; a registry that does not answer fails it with the reason', async () => {
  const ok = await strata([
    'run',
    '--wait',
    '--name',
    'waited',
    '127.0.0.1:5000/library/busybox:latest',
    '--',
    'sleep',
    '600',
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /placed on host/);
  assert.match(ok.stderr, /^running$/m);
  assert.match(ok.stdout, /instance waited created .*: running/);

  const bad = await strata(['run', '--wait', '--name', 'nowhere', '127.0.0.1:5999/no/registry:1', '--', 'true']);
  assert.equal(bad.code, 1);
  assert.match(
    bad.stderr,
    /instance nowhere failed: image 127\.0\.0\.1:5999\/no\/registry:1 could not be pulled: .*(connection refused|connect)/,
  );
  const shown = (await admin.get('/v1/instances?name=nowhere&project=default')).body.items[0];
  assert.equal(shown.state, 'failed');
});

test('a logs stream and an exec session end when their token is revoked', async () => {
  const id = await run(['sh', '-c', 'while true; do echo tick; sleep 0.2; done']);
  await inState(id, 'running')();
  const made = await admin.post('/v1/tokens', { name: 'revoked-soon' });
  const token = made.body.secret as string;
  // Logs, followed.
  const res = await fetch(`${srv.url}/v1/instances/${id}/logs?follow=true`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  let got = '';
  while (!got.includes('tick')) {
    const chunk = await reader.read();
    assert.equal(chunk.done, false);
    got += new TextDecoder().decode(chunk.value);
  }
  // An exec session, open.
  const ws = new WebSocket(`${srv.url.replace('http', 'ws')}/v1/instances/${id}/exec?command=cat&stdin=true`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const wsClosed = new Promise<void>(r => ws.once('close', () => r()));
  await new Promise(r => ws.once('open', r));

  assert.equal((await admin.delete(`/v1/tokens/${made.body.id}`)).status, 204);
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) break;
  }
  await wsClosed;
});

test('a secret set from standard input reaches the container through --secret-env, and nothing shows its value', async () => {
  const value = 's3cret-from-stdin';
  const set = await strata(['secret', 'set', 'app-key'], { input: `${value}\n` });
  assert.equal(set.code, 0, set.stderr);
  assert.match(set.stdout, /secret app-key created/);
  const run = await strata([
    'run',
    '--wait',
    '--name',
    'uses-secret',
    '--secret-env',
    'APP_KEY=app-key',
    '127.0.0.1:5000/library/busybox:latest',
    '--',
    'sh',
    '-c',
    'echo "key=$APP_KEY"; sleep 600',
  ]);
  assert.equal(run.code, 0, run.stderr);
  const id = (await admin.get('/v1/instances?name=uses-secret&project=default')).body.items[0].id as string;
  const logs = await until('the value in the container', async () => {
    const res = await admin.get(`/v1/instances/${id}/logs`);
    const t = text(res.body);
    return t.includes('key=') ? t : undefined;
  });
  assert.match(logs, new RegExp(`key=${value}`));
  const shown = await strata(['instance', 'show', 'uses-secret']);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /APP_KEY=\(secret app-key\)/);
  assert.equal(shown.stdout.includes(value), false);
  const listed = await strata(['secret', 'list']);
  assert.match(listed.stdout, /app-key/);
  assert.equal(listed.stdout.includes(value), false);
});
