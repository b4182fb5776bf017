// Pulls from a registry that wants credentials: the local registry behind a
// small proxy on 127.0.0.1:5001 that asks for HTTP Basic auth, as private
// registries do. An agent without credentials fails the instance with the
// registry's refusal; an agent given an auth file pulls and runs it, and the
// password appears in no event, message or log answer.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Docker from 'dockerode';
import { PODMAN_SOCKET, startContainerFixture, tempDir, type ContainerFixture } from './helpers.ts';

const USER = 'ci';
const PASSWORD = 'pw-7f3a9c';
const PRIVATE_IMAGE = '127.0.0.1:5001/library/busybox:latest';
const docker = new Docker({ socketPath: PODMAN_SOCKET });

let proxy: Server;
let seen401 = 0;
let seenAuthorized = 0;
const fixtures: ContainerFixture[] = [];

const removeImage = () =>
  docker
    .getImage(PRIVATE_IMAGE)
    .remove({ force: true })
    .catch(() => undefined);

before(async () => {
  const expected = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
  proxy = createServer((req, res) => {
    if (req.headers.authorization !== expected) {
      seen401++;
      res.writeHead(401, {
        'www-authenticate': 'Basic realm="strata-test"',
        'content-type': 'application/json',
        'docker-distribution-api-version': 'registry/2.0',
      });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    seenAuthorized++;
    const upstream = request(
      {
        host: '127.0.0.1',
        port: 5000,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: '127.0.0.1:5000' },
      },
      up => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>(r => proxy.listen(5001, '127.0.0.1', r));
  await removeImage();
});

after(async () => {
  for (const f of fixtures) await f.close();
  await removeImage();
  await new Promise(r => proxy.close(r));
});

test('without credentials the pull is refused and the instance fails saying so', async () => {
  const fx = await startContainerFixture('auth-none');
  fixtures.push(fx);
  const id = await fx.run({ image: PRIVATE_IMAGE, command: ['echo', 'private'] });
  const failed = await fx.waitFor(id, 'failed');
  assert.match(failed.message, /could not be pulled/);
  assert.match(failed.message, /unauthorized|authentication required|401/i);
  assert.ok(seen401 > 0, 'the registry was asked and refused');
});

test('with an auth file the agent pulls from the private registry; the secret is never shown', async () => {
  const dir = tempDir('strata-auth-');
  const file = join(dir, 'auth.json');
  writeFileSync(
    file,
    JSON.stringify({ auths: { '127.0.0.1:5001': { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }),
    { mode: 0o600 },
  );
  const fx = await startContainerFixture('auth-file', { agentArgs: ['--registry-auth', file] });
  fixtures.push(fx);
  const before = seenAuthorized;
  const id = await fx.run({ image: PRIVATE_IMAGE, command: ['echo', 'private'] });
  const done = await fx.waitFor(id, 'stopped');
  assert.equal(done.exitCode, 0);
  assert.ok(seenAuthorized > before, 'the pull went through with credentials');
  const events = (await fx.admin.get(`/v1/events?resource=${id}&limit=1000`)).body.items as {
    type: string;
    data: { message?: string };
  }[];
  assert.ok(
    events.some(e => (e.data.message ?? '').startsWith(`pulling ${PRIVATE_IMAGE}`)),
    'pull progress is visible in events',
  );
  const everything = JSON.stringify(events) + JSON.stringify((await fx.admin.get(`/v1/instances/${id}`)).body);
  assert.ok(!everything.includes(PASSWORD), 'the password appears nowhere');
});

test('an unreadable auth file stops the agent at start with a clear message', async () => {
  const { spawnSync } = await import('node:child_process');
  const { strataBin } = await import('./helpers.ts');
  const r = spawnSync(
    strataBin,
    ['agent', '--server', 'http://127.0.0.1:9', '--registry-auth', '/no/such/auth.json', '--data', tempDir()],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 2);
  assert.match(r.stderr, /cannot read the registry auth file \/no\/such\/auth.json/);
});
