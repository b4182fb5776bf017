// The `strata` CLI, long-running and edge behaviour: `events -f` and `--watch`
// over the server-sent event stream (and Ctrl-C ending them with status 0),
// shell completion, error reporting, and the saveContext API `strata dev` uses.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { saveContext } from '../src/cli/config.ts';
import {
  cliEnv,
  client,
  removeDir,
  runCli,
  startTestServer,
  strataBin,
  tempDir,
  type CliResult,
  type Client,
  type TestServer,
} from './helpers.ts';

type Result = CliResult;

let srv: TestServer;
let admin: Client;
const dir = tempDir('strata-cli-stream-');
const configFile = join(dir, 'config.yaml');

const env = (extra: Record<string, string>) => cliEnv(configFile, dir, extra);
const adminEnv = () => ({ STRATA_URL: srv.url, STRATA_TOKEN: srv.adminToken });

const strata = (args: string[], extra: Record<string, string> = adminEnv()): Promise<Result> =>
  runCli(args, env(extra));

/** A long-running CLI process whose output can be awaited piece by piece. */
function background(args: string[]) {
  const child: ChildProcess = spawn(strataBin, args, { env: env(adminEnv()), stdio: ['ignore', 'pipe', 'pipe'] });
  const state = { stdout: '', stderr: '' };
  const waiters: (() => void)[] = [];
  const poke = () => waiters.splice(0).forEach(w => w());
  child.stdout!.on('data', (d: Buffer) => ((state.stdout += d.toString()), poke()));
  child.stderr!.on('data', (d: Buffer) => ((state.stderr += d.toString()), poke()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(r =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  return {
    state,
    /** resolves once the predicate holds on the output so far */
    until(what: string, pred: (s: typeof state) => boolean, timeoutMs = 60_000): Promise<void> {
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`timed out waiting for ${what}; stdout: ${state.stdout}; stderr: ${state.stderr}`)),
          timeoutMs,
        );
        const check = () => {
          if (pred(state)) {
            clearTimeout(t);
            resolve();
          } else waiters.push(check);
        };
        check();
      });
    },
    async interrupt() {
      child.kill('SIGINT');
      return exited;
    },
    kill: () => child.kill('SIGKILL'),
  };
}

before(async () => {
  srv = await startTestServer();
  admin = client(srv.url, srv.adminToken);
  assert.equal((await admin.post('/v1/projects', { name: 'live' })).status, 201);
});
after(async () => {
  await srv.close();
  removeDir(dir);
});

test('events -f prints events that happen after it starts; Ctrl-C exits 0', async () => {
  const before = await admin.post('/v1/instances', {
    project: 'live',
    kind: 'container',
    image: 'busybox',
    name: 'earlier',
  });
  assert.equal(before.status, 201);
  const table = background(['events', '-f', '-p', 'live']);
  const jsonl = background(['events', '-f', '-p', 'live', '-o', 'json']);
  try {
    await table.until('the stream to open', s => s.stderr.includes('Following events of project live'));
    await jsonl.until('the stream to open', s => s.stderr.includes('Following events'));
    const created = await admin.post('/v1/instances', {
      project: 'live',
      kind: 'container',
      image: 'busybox',
      name: 'later',
    });
    assert.equal(created.status, 201);
    const id: string = created.body.id;
    await table.until('the instance.created line', s => s.stdout.includes(id));
    await jsonl.until('the JSON line', s => s.stdout.includes(id));

    const line = table.state.stdout.split('\n').find(l => l.includes('instance.created'))!;
    assert.match(
      line,
      new RegExp(
        `^\\d{4}-\\d\\d-\\d\\dT\\S+Z\\s+#\\d+\\s+instance\\.created\\s+instance/${id}\\s+user:admin\\s+name=later`,
      ),
    );
    assert.ok(!table.state.stdout.includes('earlier'), 'without --since, only new events');
    const events = jsonl.state.stdout
      .trim()
      .split('\n')
      .map(l => JSON.parse(l) as { type: string; resourceId: string });
    assert.ok(events.some(e => e.type === 'instance.created' && e.resourceId === id));
  } finally {
    const [a, b] = await Promise.all([table.interrupt(), jsonl.interrupt()]);
    assert.equal(a.code, 0, 'Ctrl-C ends events -f with status 0');
    assert.equal(b.code, 0);
  }
});

test('--watch re-renders a list when the event stream reports a change', async () => {
  const w = background(['instance', 'list', '-p', 'live', '--watch', '-o', 'json']);
  try {
    // Not a terminal: each rendering is printed in full, one JSON array after another.
    await w.until('the first rendering', s => s.stdout.includes('"later"'));
    assert.ok(!w.state.stdout.includes('watched'));
    // The stream opens right after the first rendering; keep creating until one is seen.
    let n = 0;
    while (!w.state.stdout.includes('"watched-')) {
      assert.ok(n < 20, `watch never re-rendered: ${w.state.stdout}`);
      await admin.post('/v1/instances', {
        project: 'live',
        kind: 'container',
        image: 'busybox',
        name: `watched-${n++}`,
      });
      await w.until('a re-rendering', s => s.stdout.includes('"watched-'), 1000).catch(() => undefined);
    }
    const renderings = w.state.stdout
      .trim()
      .split(/\n(?=\[)/)
      .map(t => JSON.parse(t) as { name: string }[]);
    assert.ok(renderings.length >= 2);
    assert.ok(renderings.at(-1)!.some(i => i.name.startsWith('watched-')));
    assert.ok(!renderings[0]!.some(i => i.name.startsWith('watched-')));
  } finally {
    const { code } = await w.interrupt();
    assert.equal(code, 0, 'Ctrl-C ends --watch with status 0');
  }
});

test('completion scripts are generated from the command tree', async () => {
  const bash = await strata(['completion', 'bash']);
  assert.equal(bash.code, 0);
  assert.match(bash.stdout, /complete -o default -F _strata strata/);
  const top = /^\s*''\) echo '([^']*)'/m.exec(bash.stdout)?.[1]?.split(' ') ?? [];
  for (const c of [
    'run',
    'instance',
    'deployment',
    'apply',
    'diff',
    'delete',
    'events',
    'project',
    'user',
    'token',
    'host',
    'node',
    'join-token',
    'login',
    'context',
    'whoami',
    'completion',
    'dev',
  ]) {
    assert.ok(top.includes(c), `top-level completion lists ${c}: ${top.join(' ')}`);
  }
  assert.match(bash.stdout, /'instance'\) echo 'list show explain create delete start stop restart pause resume'/);
  assert.match(bash.stdout, /'instance list'\) echo '[^']*--all-projects[^']*'/);
  assert.match(bash.stdout, /'deployment'\) echo 'list show scale revisions delete'/);
  assert.match(bash.stdout, /'apply'\) echo '--filename --wait --timeout [^']*'/);
  assert.match(bash.stdout, /'run\|--kind'\|'run\|-k'\) echo 'container vm metal'/);
  const fish = await strata(['completion', 'fish']);
  assert.equal(fish.code, 0);
  assert.match(fish.stdout, /complete -c strata -n "__strata_at 'host'" -a 'drain'/);
  const help = await strata(['completion', '--help']);
  assert.match(help.stdout, /source <\(strata completion bash\)/);
});

test('--version and -V print the version; --help lists every command; an unknown one is a usage error', async () => {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  for (const flag of ['--version', '-V'])
    assert.deepEqual(await strata([flag]), { code: 0, stdout: `${version}\n`, stderr: '' }, flag);
  // Only the command named is loaded to run it; help and suggestions see them all.
  const help = await strata(['--help']);
  assert.equal(help.code, 0);
  for (const c of ['server', 'dev', 'agent', 'run', 'instance|instances', 'events', 'join-token|join-tokens', 'whoami'])
    assert.match(help.stdout, new RegExp(`^  ${c.replace('|', '\\|')}\\b`, 'm'), c);
  const typo = await strata(['instanse', 'list']);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unknown command 'instanse'\n\(Did you mean instance\?\)/);
});

test('errors: unreachable server, usage errors, no configuration', async () => {
  // A port that was free a moment ago: nothing listens there.
  const port = await new Promise<number>(resolve => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const down = await strata(['instance', 'list'], { STRATA_URL: url, STRATA_TOKEN: 'x' });
  assert.equal(down.code, 1);
  assert.match(down.stderr, new RegExp(`^error: cannot reach the Strata server at ${url} \\(connection refused\\)`));
  assert.match(down.stderr, /strata dev/);
  assert.match(down.stderr, /strata login/);
  assert.doesNotMatch(down.stderr, /\n\s+at /);

  const usage = await strata(['run', '--memory', '2X', 'busybox']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /^error: option '-m, --memory <size>' argument '2X' is invalid/);
  assert.match(usage.stderr, /strata run --help/);
  const unknown = await strata(['instance', 'list', '--colour']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^error: unknown option '--colour'/);

  const unconfigured = await strata(['whoami'], {});
  assert.equal(unconfigured.code, 1);
  assert.match(unconfigured.stderr, /^error: no server URL configured: run `strata login URL/);
});

test('saveContext writes the config file strata dev and the CLI share', async () => {
  const file = join(dir, 'saved.yaml');
  const prev = process.env.STRATA_CONFIG;
  process.env.STRATA_CONFIG = file;
  try {
    assert.equal(saveContext('one', { url: 'http://a:1', token: 't1' }), file);
    assert.equal(saveContext('two', { url: 'http://b:2', token: 't2', project: 'p' }), file);
    let cfg = parse(readFileSync(file, 'utf8'));
    assert.equal(cfg.currentContext, 'one', 'the first context becomes current, later ones only when asked');
    saveContext('two', { url: srv.url, token: srv.adminToken, project: 'live' }, { makeCurrent: true });
    cfg = parse(readFileSync(file, 'utf8'));
    assert.deepEqual(cfg, {
      currentContext: 'two',
      contexts: {
        one: { url: 'http://a:1', token: 't1' },
        two: { url: srv.url, token: srv.adminToken, project: 'live' },
      },
    });
    assert.equal(statSync(file).mode & 0o777, 0o600);
  } finally {
    if (prev === undefined) delete process.env.STRATA_CONFIG;
    else process.env.STRATA_CONFIG = prev;
  }
  // The CLI reads what saveContext wrote: project "live" from the context.
  const r = await new Promise<Result>(resolve => {
    const child = spawn(strataBin, ['instance', 'list', '-o', 'json'], {
      env: { ...env({}), STRATA_CONFIG: file },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('close', code => resolve({ code, stdout, stderr }));
  });
  assert.equal(r.code, 0, r.stderr);
  assert.ok((JSON.parse(r.stdout) as { name: string }[]).some(i => i.name === 'later'));
});
