// Container options and health checks for real, through the API and a real
// agent on Podman: working dir, user, read-only root, tmpfs, pids limit,
// published ports, and each kind of health check going healthy and unhealthy.
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import {
  freePort,
  PODMAN_SOCKET,
  startContainerFixture,
  until,
  type Client,
  type ContainerFixture,
} from './helpers.ts';

const HTTP_IMAGE = '127.0.0.1:5000/library/busybox-http:latest';

let fx: ContainerFixture;
let admin: Client;

before(async () => {
  fx = await startContainerFixture('opts-node');
  admin = fx.admin;
});
after(() => fx.close());

const logsOf = async (id: string): Promise<string> => {
  const res = await admin.get(`/v1/instances/${id}/logs`);
  assert.equal(res.status, 200);
  const body = typeof res.body === 'string' ? res.body : JSON.stringify(res.body);
  return body
    .trim()
    .split('\n')
    .filter(Boolean)
    .map(l => (JSON.parse(l) as { data: string }).data)
    .join('');
};

const healthOf = (id: string, status: string, timeoutMs = 60_000) =>
  until(
    `${id} ${status}`,
    async () => {
      const i = (await admin.get(`/v1/instances/${id}`)).body;
      return i.observed.health?.status === status ? i : undefined;
    },
    timeoutMs,
  );

test('working dir, user, read-only root, tmpfs and the pids limit reach the runtime', async () => {
  const script = [
    'pwd',
    'id -u',
    'id -g',
    'touch /made-here 2>/dev/null && echo root-writable || echo root-read-only',
    'echo scratch > /scratch/f && cat /scratch/f',
    'df -m /scratch | tail -1',
    // Past the pids limit a shell cannot fork any more and gives up (exit 2).
    "sh -c 'i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); echo started $i; done' 2>/dev/null; echo loop exit $?",
  ].join('; ');
  const id = await fx.run({
    command: ['sh', '-c', script],
    workingDir: '/tmp',
    user: '1000:1001',
    readOnlyRootfs: true,
    tmpfs: [{ path: '/scratch', sizeMib: 8 }],
    pidsLimit: 16,
    labels: { team: 'blue' },
    resources: { vcpus: 2, memoryMib: 48 },
  });
  const shown = await fx.waitFor(id, 'stopped');
  const Docker = (await import('dockerode')).default;
  const docker = new Docker({ socketPath: PODMAN_SOCKET });
  const [c] = await docker.listContainers({ all: true, filters: { label: [`io.strata.instance=${id}`] } });
  const info = await docker.getContainer(c!.Id).inspect();
  assert.equal(info.HostConfig.NanoCpus, 2e9, 'two vCPUs of CPU time');
  assert.equal(info.HostConfig.Memory, 48 * 1024 * 1024);
  assert.equal(info.HostConfig.PidsLimit, 16);
  assert.equal(info.Config.Labels.team, 'blue', "the instance's labels are on the container");
  assert.equal(shown.workingDir, '/tmp');
  assert.equal(shown.user, '1000:1001');
  assert.equal(shown.readOnlyRootfs, true);
  assert.equal(shown.pidsLimit, 16);
  const out = (await logsOf(id)).split('\n');
  assert.equal(out[0], '/tmp');
  assert.equal(out[1], '1000');
  assert.equal(out[2], '1001');
  assert.equal(out[3], 'root-read-only');
  assert.equal(out[4], 'scratch');
  assert.match(out[5] ?? '', /^tmpfs\s+8\s/, 'an 8 MiB tmpfs');
  const started = out.filter(l => l.startsWith('started ')).length;
  assert.ok(started > 0 && started < 16, `the pids limit held after ${started} processes`);
  assert.match(out.at(-2) ?? '', /^loop exit [1-9]/, 'the forking shell was refused');
});

test('published ports: a fixed host port and any free one, both reachable from the host', async () => {
  const fixed = await freePort();
  const id = await fx.run({
    image: HTTP_IMAGE,
    command: [],
    ports: [
      { containerPort: 8080, hostPort: fixed },
      { containerPort: 8080, hostIp: '127.0.0.1' },
    ],
  });
  await fx.waitFor(id, 'running');
  const i = await until('ports observed', async () => {
    const x = (await admin.get(`/v1/instances/${id}`)).body;
    return x.observed.ports.length === 2 ? x : undefined;
  });
  assert.match(i.observed.address ?? '', /^\d+\.\d+\.\d+\.\d+$/, 'the container address is reported');
  const bound = i.observed.ports as { hostPort: number; hostIp: string }[];
  assert.ok(bound.some(b => b.hostPort === fixed));
  const any = bound.find(b => b.hostPort !== fixed);
  assert.ok(any && any.hostPort > 0 && any.hostIp === '127.0.0.1', JSON.stringify(bound));
  for (const port of [fixed, any.hostPort]) {
    const text = await until(`GET :${port}`, async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
      return res?.ok ? res.text() : undefined;
    });
    assert.match(text, /hello from strata/);
  }
});

test('http and tcp health checks: healthy on a serving port, unhealthy on a closed port or a 404', async () => {
  const fast = { intervalSeconds: 1, timeoutSeconds: 1, retries: 2 };
  const httpOk = await fx.run({
    image: HTTP_IMAGE,
    command: [],
    healthCheck: { type: 'http', port: 8080, path: '/', ...fast },
  });
  const httpMissing = await fx.run({
    image: HTTP_IMAGE,
    command: [],
    healthCheck: { type: 'http', port: 8080, path: '/no-such-page', ...fast },
  });
  const tcpOk = await fx.run({ image: HTTP_IMAGE, command: [], healthCheck: { type: 'tcp', port: 8080, ...fast } });
  const tcpClosed = await fx.run({ image: HTTP_IMAGE, command: [], healthCheck: { type: 'tcp', port: 9, ...fast } });
  const healthy = await healthOf(httpOk, 'healthy');
  assert.match(healthy.observed.health.output, /200/);
  const notFound = await healthOf(httpMissing, 'unhealthy');
  assert.match(notFound.observed.health.output, /404/);
  assert.equal(notFound.state, 'running', 'an unhealthy instance keeps running');
  await healthOf(tcpOk, 'healthy');
  const closed = await healthOf(tcpClosed, 'unhealthy');
  assert.match(closed.observed.health.output, /ECONNREFUSED|refused/);
  assert.equal(closed.observed.health.failingStreak >= 2, true);
});

test('an exec health check goes healthy, then unhealthy when its command starts failing; each change is an event', async () => {
  const id = await fx.run({
    command: ['sh', '-c', 'touch /tmp/ok; sleep 4; rm /tmp/ok; sleep 600'],
    healthCheck: {
      type: 'exec',
      command: ['test', '-f', '/tmp/ok'],
      intervalSeconds: 1,
      timeoutSeconds: 2,
      retries: 2,
    },
  });
  await healthOf(id, 'healthy');
  const sick = await healthOf(id, 'unhealthy');
  assert.match(sick.observed.health.output, /exit 1/);
  const events = (await admin.get(`/v1/events?resource=${id}&limit=1000`)).body.items as {
    type: string;
    data: { from: string | null; to: string };
  }[];
  const changes = events.filter(e => e.type === 'instance.health').map(e => e.data.to);
  assert.deepEqual(changes.slice(0, 3), ['starting', 'healthy', 'unhealthy']);

  // A stopped instance has no health.
  assert.equal((await admin.post(`/v1/instances/${id}/stop`)).status, 202);
  const stopped = await fx.waitFor(id, 'stopped');
  assert.equal(stopped.observed.health, null);
});

test('a health check in its start period stays starting', async () => {
  const id = await fx.run({
    command: ['sleep', '600'],
    healthCheck: { type: 'exec', command: ['false'], intervalSeconds: 1, retries: 1, startPeriodSeconds: 600 },
  });
  await healthOf(id, 'starting');
  await new Promise(r => setTimeout(r, 3500));
  assert.equal((await admin.get(`/v1/instances/${id}`)).body.observed.health.status, 'starting');
});

test('contradictory options are refused with a 400 and create nothing', async () => {
  const before = (await admin.get('/v1/instances?limit=1000')).body.items.length;
  const base = { project: 'default', kind: 'container', image: 'busybox' };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['exec without a command', { healthCheck: { type: 'exec' } }, /needs a command/],
    ['http without a port', { healthCheck: { type: 'http' } }, /needs a port/],
    ['a command on a tcp check', { healthCheck: { type: 'tcp', port: 80, command: ['true'] } }, /only exec/],
    [
      'one host port twice',
      {
        ports: [
          { containerPort: 80, hostPort: 8080 },
          { containerPort: 81, hostPort: 8080 },
        ],
      },
      /published twice/,
    ],
    ['one tmpfs path twice', { tmpfs: [{ path: '/t' }, { path: '/t' }] }, /mounted twice/],
    ['a relative working dir', { workingDir: 'tmp' }, /workingDir/],
    ['a user with spaces', { user: 'root user' }, /user/],
    ['port 0', { ports: [{ containerPort: 0 }] }, /containerPort/],
  ];
  for (const [why, extra, message] of cases) {
    const res = await admin.post('/v1/instances', { ...base, ...extra });
    assert.equal(res.status, 400, `${why}: ${JSON.stringify(res.body)}`);
    assert.match(res.body.error.message, message, why);
  }
  assert.equal((await admin.get('/v1/instances?limit=1000')).body.items.length, before);
});

test('limits larger than any host fail an instance that does not wait for capacity at once, saying which', async () => {
  const id = await fx.run({
    command: ['true'],
    resources: { vcpus: 1, memoryMib: 10_000_000 },
    waitForCapacity: false,
  });
  const failed = await fx.waitFor(id, 'failed');
  assert.match(failed.message, /unplaced: .*memory/);
  assert.equal(failed.host, null);
  const events = (await admin.get(`/v1/events?resource=${id}`)).body.items as { type: string }[];
  assert.ok(events.some(e => e.type === 'instance.unplaced'));
});
