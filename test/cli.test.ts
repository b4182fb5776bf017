// The `strata` CLI end to end: the real bin/strata as a child process against
// a real server, with its own config file. Covers contexts and login, tenancy
// (projects, users, tokens, roles, isolation), instances (run, list, filters,
// pagination, quota) and the event log.
import { strict as assert } from 'node:assert';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import {
  cliEnv,
  client,
  removeDir,
  runCli,
  startTestServer,
  tempDir,
  type CliResult,
  type Client,
  type TestServer,
} from './helpers.ts';

type Result = CliResult;

let srv: TestServer;
let admin: Client;
const dir = tempDir('strata-cli-');
const configFile = join(dir, 'config.yaml');

/** bin/strata with a clean environment: only this test's config file and the given overrides. */
const strata = (args: string[], env: Record<string, string> = {}): Promise<Result> =>
  runCli(args, cliEnv(configFile, dir, env));

/** Runs as the given token instead of the saved context. */
const as = (token: string) => ({ STRATA_URL: srv.url, STRATA_TOKEN: token });

function ok(r: Result, what: string): Result {
  assert.equal(r.code, 0, `${what} should succeed; stderr: ${r.stderr}`);
  return r;
}

function noStack(r: Result): void {
  assert.doesNotMatch(r.stderr, /\n\s+at /, `no stack trace: ${r.stderr}`);
}

const json = <T = any>(r: Result): T => JSON.parse(r.stdout) as T;

let ritaToken = ''; // reader in alpha
let maxToken = ''; // member in alpha

before(async () => {
  srv = await startTestServer();
  admin = client(srv.url, srv.adminToken);
});
after(async () => {
  await srv.close();
  removeDir(dir);
});

test('login verifies the token, saves a 0600 context, and whoami uses it', async () => {
  const bad = await strata(['login', srv.url, '--token', 'stk_wrong', '--name', 'bad']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: invalid or expired token/m);
  noStack(bad);

  const tokenFile = join(dir, 'admin.token');
  writeFileSync(tokenFile, `${srv.adminToken}\n`);
  ok(await strata(['login', srv.url, '--token-file', tokenFile, '--name', 'lab']), 'login');
  assert.equal(statSync(configFile).mode & 0o777, 0o600);
  const cfg = parse(readFileSync(configFile, 'utf8')) as {
    currentContext: string;
    contexts: Record<string, { url: string; token: string; project: string }>;
  };
  assert.equal(cfg.currentContext, 'lab', 'the failed login saved nothing, the good one became current');
  assert.deepEqual(Object.keys(cfg.contexts), ['lab']);
  assert.deepEqual(cfg.contexts.lab, { url: srv.url, token: srv.adminToken, project: 'default' });

  const me = ok(await strata(['whoami']), 'whoami');
  assert.match(me.stdout, /^Name:\s+admin$/m);
  assert.match(me.stdout, /^Cluster admin:\s+yes$/m);
  assert.match(me.stdout, /^Context:\s+lab$/m);
});

test('project create, list, show and delete', async () => {
  ok(await strata(['project', 'create', 'alpha', '--label', 'team=a', '-d', 'first']), 'create alpha');
  ok(await strata(['project', 'create', 'beta']), 'create beta');
  ok(await strata(['project', 'create', 'scratch']), 'create scratch');

  const list = json<{ name: string; labels: Record<string, string> }[]>(
    ok(await strata(['project', 'ls', '-o', 'json']), 'list'),
  );
  assert.deepEqual(list.map(p => p.name).sort(), ['alpha', 'beta', 'default', 'scratch']);
  assert.deepEqual(list.find(p => p.name === 'alpha')?.labels, { team: 'a' });

  const show = ok(await strata(['project', 'show', 'alpha', '-o', 'yaml']), 'show');
  const shown = parse(show.stdout) as { name: string; description: string; quota: { instances: number | null } };
  assert.equal(shown.name, 'alpha');
  assert.equal(shown.description, 'first');
  assert.equal(shown.quota.instances, null);

  const del = ok(await strata(['project', 'delete', 'scratch']), 'delete');
  assert.match(del.stdout, /project scratch deleted/);
  const gone = await strata(['project', 'show', 'scratch']);
  assert.equal(gone.code, 1);
  assert.equal(gone.stderr.trim(), 'error: project "scratch" not found');
});

test('users with memberships; tokens created by the CLI work from the CLI', async () => {
  const rita = ok(await strata(['user', 'create', 'rita', '--member', 'alpha:reader']), 'create rita');
  assert.match(rita.stdout, /user rita created \(usr_\w+\); alpha:reader/);
  const max = json(
    ok(
      await strata(['user', 'create', 'max', '--member', 'alpha:member', '--member', 'beta:reader', '-o', 'json']),
      'create max',
    ),
  );
  assert.deepEqual(
    max.projects.map((p: { projectName: string; role: string }) => `${p.projectName}:${p.role}`).sort(),
    ['alpha:member', 'beta:reader'],
  );
  const badRole = await strata(['user', 'create', 'zed', '--member', 'alpha:owner']);
  assert.equal(badRole.code, 2, 'a malformed --member is a usage error');
  assert.match(badRole.stderr, /^error: --member "alpha:owner" is not PROJECT:ROLE/);

  // Table mode: the secret alone on stdout, the notice on stderr.
  const t1 = ok(
    await strata(['token', 'create', 'rita-cli', '--user', 'rita', '--expires-in', '30d']),
    'token for rita',
  );
  ritaToken = t1.stdout.trim();
  assert.match(ritaToken, /^stk_\S+$/);
  assert.match(t1.stderr, /shown only this once/);
  const t2 = json(ok(await strata(['token', 'create', 'max-cli', '--user', 'max', '-o', 'json']), 'token for max'));
  maxToken = t2.secret;
  assert.equal(t2.expiresAt, null);

  const whoRita = json(ok(await strata(['whoami', '-o', 'json'], as(ritaToken)), 'whoami as rita'));
  assert.equal(whoRita.name, 'rita');
  assert.deepEqual(
    whoRita.projects.map((p: { role: string }) => p.role),
    ['reader'],
  );

  const ritaTokens = json<{ name: string; expiresAt: string }[]>(
    ok(await strata(['token', 'list', '-o', 'json'], as(ritaToken)), 'rita lists her tokens'),
  );
  assert.deepEqual(
    ritaTokens.map(t => t.name),
    ['rita-cli'],
  );
  const days = (Date.parse(ritaTokens[0]!.expiresAt) - Date.now()) / 86400_000;
  assert.ok(days > 29.9 && days <= 30, `expires in 30 days, got ${days}`);

  // Membership changes through the CLI.
  ok(await strata(['project', 'add-member', 'beta', 'rita', '--role', 'reader']), 'add member');
  const members = ok(await strata(['project', 'members', 'beta']), 'members');
  assert.match(members.stdout, /^USER\s+ROLE/);
  assert.match(members.stdout, /^max\s+reader/m);
  assert.match(members.stdout, /^rita\s+reader/m);
  ok(await strata(['project', 'remove-member', 'beta', 'rita']), 'remove member');
  const after = await admin.get('/v1/projects/beta/members');
  assert.deepEqual(
    after.body.items.map((m: { userName: string }) => m.userName),
    ['max'],
  );
});

test('a reader cannot run instances: the server 403 message, exit 1', async () => {
  const r = await strata(['run', '-p', 'alpha', 'busybox'], as(ritaToken));
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim(), 'error: this action needs the member role in the project; you have reader');
  assert.equal(r.stdout, '');
  const none = await admin.get('/v1/instances?project=alpha');
  assert.equal(none.body.items.length, 0);
});

test('run: command after --, env, labels, resources and constraints reach the API', async () => {
  const r = ok(
    await strata(
      [
        'run',
        '-p',
        'alpha',
        '--kind',
        'container',
        '--name',
        'web-1',
        '--label',
        'app=web',
        '--label',
        'tier=front',
        '-e',
        'MODE=prod',
        '--env',
        'EQ=a=b',
        '--cpus',
        '2',
        '--memory',
        '1Gi',
        '--disk',
        '3',
        '-c',
        'topology.zone==a',
        '-c',
        'gpu',
        '-c',
        '!ssd',
        '-c',
        'arch!=arm',
        'registry.local/busybox:1',
        '--',
        'sh',
        '-c',
        'echo "hi -o there"; exit 3',
      ],
      as(maxToken),
    ),
    'run',
  );
  assert.match(r.stdout, /^instance web-1 created \(ins_\w+\) in project alpha/);
  const list = await admin.get('/v1/instances?project=alpha&name=web-1');
  const inst = list.body.items[0];
  assert.ok(inst, 'stored');
  assert.equal(inst.kind, 'container');
  assert.equal(inst.image, 'registry.local/busybox:1');
  assert.deepEqual(inst.command, ['sh', '-c', 'echo "hi -o there"; exit 3']);
  assert.deepEqual(inst.env, { MODE: 'prod', EQ: 'a=b' });
  assert.deepEqual(inst.labels, { app: 'web', tier: 'front' });
  assert.deepEqual(inst.resources, { vcpus: 2, memoryMib: 1024, diskGib: 3 });
  assert.deepEqual(inst.constraints, [
    { key: 'topology.zone', op: '==', value: 'a' },
    { key: 'gpu', op: 'exists' },
    { key: 'ssd', op: 'not-exists' },
    { key: 'arch', op: '!=', value: 'arm' },
  ]);

  // show by name in the current project, as JSON: the API object.
  const shown = json(
    ok(await strata(['instance', 'show', 'web-1', '-p', 'alpha', '-o', 'json'], as(maxToken)), 'show'),
  );
  assert.equal(shown.id, inst.id);
  assert.deepEqual(shown.command, inst.command);
});

test('instances of another project answer not found', async () => {
  const other = await admin.post('/v1/instances', {
    project: 'default',
    kind: 'container',
    image: 'busybox',
    name: 'secret',
  });
  assert.equal(other.status, 201);
  const byId = await strata(['instance', 'show', other.body.id], as(maxToken));
  assert.equal(byId.code, 1);
  assert.equal(byId.stderr.trim(), `error: instance "${other.body.id}" not found`);
  assert.doesNotMatch(byId.stdout + byId.stderr, /busybox/, 'nothing of it leaks');
  const byName = await strata(['instance', 'show', 'secret', '-p', 'default'], as(maxToken));
  assert.equal(byName.code, 1);
  assert.equal(byName.stderr.trim(), 'error: project "default" not found');
  // An admin in alpha looking for a name that lives elsewhere.
  const wrongProject = await strata(['instance', 'show', 'secret', '-p', 'alpha']);
  assert.equal(wrongProject.code, 1);
  assert.equal(wrongProject.stderr.trim(), 'error: instance "secret" not found in project alpha');
});

test('instance list: JSON, tables, label filters and --all pagination', async () => {
  for (const [name, app] of [
    ['web-2', 'web'],
    ['db-1', 'db'],
    ['db-2', 'db'],
    ['cache-1', 'cache'],
  ]) {
    const r = await admin.post('/v1/instances', {
      project: 'alpha',
      kind: 'container',
      image: 'busybox',
      name,
      labels: { app },
    });
    assert.equal(r.status, 201);
  }
  const all = json<{ name: string; project: string }[]>(
    ok(await strata(['instance', 'list', '-p', 'alpha', '-o', 'json'], as(maxToken)), 'list json'),
  );
  assert.deepEqual(
    all.map(i => i.name),
    ['web-1', 'web-2', 'db-1', 'db-2', 'cache-1'],
  );

  const web = json<{ name: string }[]>(
    ok(await strata(['instance', 'list', '-p', 'alpha', '-l', 'app=web', '-o', 'json'], as(maxToken)), 'label filter'),
  );
  assert.deepEqual(
    web.map(i => i.name),
    ['web-1', 'web-2'],
  );

  const firstPage = ok(
    await strata(['instance', 'list', '-p', 'alpha', '--limit', '2'], as(maxToken)),
    'one page table',
  );
  const lines = firstPage.stdout.trim().split('\n');
  assert.match(lines[0]!, /^NAME\s+ID\s+KIND\s+IMAGE\s+STATE\s+HOST\s+AGE$/);
  assert.match(lines[1]!, /^web-1\s+ins_\w+\s+container\s+registry\.local\/busybox:1\s+pending\s+-\s+\d+s$/);
  assert.match(lines[2]!, /^web-2\s/);
  assert.match(firstPage.stdout, /use --all/);
  assert.equal(lines.filter(l => /\sins_/.test(l)).length, 2);

  const paged = json<{ name: string }[]>(
    ok(
      await strata(['instance', 'list', '-p', 'alpha', '--limit', '2', '--all', '-o', 'json'], as(maxToken)),
      'all pages',
    ),
  );
  assert.deepEqual(
    paged.map(i => i.name),
    all.map(i => i.name),
    '--all follows nextCursor through 3 pages of 2',
  );

  const everywhere = ok(await strata(['instance', 'list', '--all-projects']), 'all projects');
  assert.match(everywhere.stdout, /^PROJECT\s+NAME\s+ID/);
  assert.match(everywhere.stdout, /^default\s+secret\s/m);
  assert.match(everywhere.stdout, /^alpha\s+db-2\s/m);
});

test('stop, start and delete by name', async () => {
  const stop = ok(await strata(['instance', 'stop', 'db-1', 'db-2', '-p', 'alpha'], as(maxToken)), 'stop');
  assert.match(stop.stdout, /instance db-1 \(ins_\w+\): desired stopped/);
  assert.match(stop.stdout, /instance db-2 \(ins_\w+\): desired stopped/);
  const start = json(
    ok(await strata(['instance', 'start', 'db-1', '-p', 'alpha', '-o', 'json'], as(maxToken)), 'start'),
  );
  assert.equal(start.desiredState, 'running');
  ok(await strata(['instance', 'rm', 'cache-1', '-p', 'alpha'], as(maxToken)), 'delete');
  const left = await admin.get('/v1/instances?project=alpha&name=cache-1');
  assert.equal(left.body.items.length, 0);
  const db2 = (await admin.get('/v1/instances?project=alpha&name=db-2')).body.items[0];
  assert.equal(db2.desiredState, 'stopped');
});

test('quota refusal names the limit; "unlimited" clears it', async () => {
  const set = json(
    ok(
      await strata(['project', 'set-quota', 'beta', '--instances', '1', '--memory-mib', '2Gi', '-o', 'json']),
      'set quota',
    ),
  );
  assert.deepEqual(set.quota, { instances: 1, vcpus: null, memoryMib: 2048, diskGib: null });
  ok(await strata(['run', '-p', 'beta', '--name', 'one', 'busybox']), 'first fits');
  const refused = await strata(['run', '-p', 'beta', '--name', 'two', 'busybox']);
  assert.equal(refused.code, 1);
  assert.equal(refused.stderr.trim(), 'error: project beta quota exceeded: instances 1+1 > 1');
  noStack(refused);
  const cleared = json(
    ok(await strata(['project', 'set-quota', 'beta', '--instances', 'unlimited', '-o', 'json']), 'clear quota'),
  );
  assert.equal(cleared.quota.instances, null);
  assert.equal(cleared.quota.memoryMib, 2048, 'other limits stay');
});

test('events lists what happened in the project', async () => {
  const r = ok(await strata(['events', '-p', 'alpha', '-o', 'json'], as(ritaToken)), 'events');
  const events = json<{ type: string; project: string; data: Record<string, unknown> }[]>(r);
  const types = new Set(events.map(e => e.type));
  assert.ok(types.has('instance.created'), [...types].join(','));
  assert.ok(events.some(e => e.type === 'instance.created' && e.data.name === 'web-1'));
  const alphaId = (await admin.get('/v1/projects/alpha')).body.id;
  assert.ok(
    events.every(e => e.project === alphaId),
    'only events of alpha',
  );
});

test('contexts: use, show and delete; env overrides; revoked tokens', async () => {
  ok(await strata(['login', srv.url, '--token', maxToken, '--name', 'max']), 'login max');
  const cfg = parse(readFileSync(configFile, 'utf8')) as {
    currentContext: string;
    contexts: Record<string, { project: string }>;
  };
  assert.equal(cfg.currentContext, 'max');
  assert.equal(cfg.contexts.max?.project, 'alpha', 'max cannot see "default": his first project');
  const list = ok(await strata(['context', 'list']), 'context list');
  assert.match(list.stdout, /^\*\s+max\s+http/m);
  assert.match(list.stdout, /^\s+lab\s+http/m);
  assert.doesNotMatch(list.stdout, /stk_/, 'tokens are not printed');
  // max's context is current: his instances are listed without -p.
  const mine = json<{ name: string }[]>(ok(await strata(['instance', 'list', '-o', 'json']), 'list as max'));
  assert.ok(mine.some(i => i.name === 'web-1'));
  const viaFlag = json(ok(await strata(['whoami', '--context', 'lab', '-o', 'json']), '--context'));
  assert.equal(viaFlag.name, 'admin');
  const viaEnv = ok(await strata(['context', 'show'], { STRATA_PROJECT: 'beta' }), 'context show');
  assert.match(viaEnv.stdout, /^Project:\s+beta$/m);
  ok(await strata(['context', 'use', 'lab']), 'use');
  ok(await strata(['context', 'delete', 'max']), 'delete');
  const after = parse(readFileSync(configFile, 'utf8')) as {
    currentContext: string;
    contexts: Record<string, unknown>;
  };
  assert.equal(after.currentContext, 'lab');
  assert.deepEqual(Object.keys(after.contexts), ['lab']);

  const maxTokenId = (await admin.get('/v1/tokens?user=max')).body.items[0].id;
  ok(await strata(['token', 'delete', maxTokenId]), 'revoke');
  const revoked = await strata(['whoami'], as(maxToken));
  assert.equal(revoked.code, 1);
  assert.match(revoked.stderr, /^error: invalid or expired token/);
});
