// Rolling upgrades for real, as a user drives them: `strata apply -f` of spec
// files whose replicas are Podman containers serving their version over HTTP,
// `strata rollout status` to wait. While each rollout runs, a sampler asks
// every replica that should be serving for its page and records the fewest
// that answered. One deployment goes v1 -> v2, tries a v3 whose health check
// fails (rolled back to v2 by itself), an image that does not exist (rolled
// back again), then is undone to revision 1.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import Docker from 'dockerode';
import {
  cliEnv,
  PODMAN_SOCKET,
  removeDir,
  runCli,
  startContainerFixture,
  TEST_IMAGE,
  tempDir,
  until,
  type CliResult,
  type ContainerFixture,
  type ReplicaSeen,
} from './helpers.ts';

const docker = new Docker({ socketPath: PODMAN_SOCKET });
const dir = tempDir('strata-rollouts-');
const file = join(dir, 'web.yaml');
const REPLICAS = 4;
const MAX_UNAVAILABLE = 1;
/** A tag the local registry does not have: its pull fails at once with "manifest unknown". */
const MISSING_IMAGE = TEST_IMAGE.replace(/:latest$/, ':no-such-tag');

let fx: ContainerFixture;
let deploymentId = '';

/** The web tier at `version`: each replica serves its version on :8080; `checkPort` is what its health check asks. */
const spec = (o: { version: string; image?: string; checkPort?: number; deadlineSeconds?: number }) => `
apiVersion: strata/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: ${REPLICAS}
  template:
    kind: container
    image: ${o.image ?? TEST_IMAGE}
    command: [sh, -c, 'mkdir -p /www && echo "$VERSION" > /www/index.html && exec httpd -f -p 8080 -h /www']
    env: {VERSION: ${o.version}}
    stopGraceSeconds: 1
    resources: {vcpus: 1, memoryMib: 32}
    healthCheck: {type: http, port: ${o.checkPort ?? 8080}, path: /, intervalSeconds: 1, timeoutSeconds: 3, retries: 3}
  strategy:
    maxSurge: 1
    maxUnavailable: ${MAX_UNAVAILABLE}
    minHealthySeconds: 1
    progressDeadlineSeconds: ${o.deadlineSeconds ?? 120}
    autoRollback: true
`;

const strata = (...args: string[]): Promise<CliResult> =>
  runCli(args, cliEnv(join(dir, 'config.yaml'), dir, { STRATA_URL: fx.srv.url, STRATA_TOKEN: fx.srv.adminToken }));

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return r;
}

const apply = async (s: string) => {
  writeFileSync(file, s);
  return ok(await strata('apply', '-f', file), 'apply').stdout;
};

/** `strata rollout status web`, bounded: the user's wait. */
const rolloutStatus = () => strata('rollout', 'status', 'web', '--timeout', '120');

interface Detail {
  revision: number;
  status: { phase: string; message: string; rolledBackFrom: number | null };
  instances: ReplicaSeen[];
}

const detail = async (): Promise<Detail> => (await fx.admin.get(`/v1/deployments/${deploymentId}`)).body as Detail;

/** Every instance's address, by id (the project holds only this deployment's replicas). */
const addresses = async (): Promise<Map<string, string | null>> => {
  const items = (await fx.admin.get('/v1/instances?project=default&limit=1000')).body.items as {
    id: string;
    observed: { address: string | null };
  }[];
  return new Map(items.map(i => [i.id, i.observed.address]));
};

/** What a replica serves at its address right now: its page, or why it did not answer. */
async function probe(address: string | null | undefined): Promise<{ page: string | null; why: string }> {
  if (!address) return { page: null, why: 'no address' };
  try {
    const res = await fetch(`http://${address}:8080/`, { signal: AbortSignal.timeout(5000) });
    const text = (await res.text()).trim();
    return res.ok ? { page: text, why: '' } : { page: null, why: `HTTP ${res.status}` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { page: null, why: e.name === 'TimeoutError' ? 'timed out' : (e.cause?.code ?? e.message) };
  }
}

const served = async (address: string | null | undefined) => (await probe(address)).page;

interface Sample {
  at: string;
  /** how long the sample took (ms) */
  tookMs: number;
  /** replicas meant to run (not going away) that answered */
  serving: number;
  /** what each of them served, or why not, by replica name */
  pages: Record<string, string>;
}

/**
 * Samples availability until stopped: every ~100 ms, each replica the API says
 * should run is asked for its page; a replica counts only if it answered. Those
 * being deleted are not counted even if they still answer. Stopped at the end
 * of the test `t` whatever happens.
 */
function sampleAvailability(t: TestContext) {
  const samples: Sample[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const start = Date.now();
      const [d, addr] = await Promise.all([detail(), addresses()]);
      const meant = d.instances.filter(r => r.desiredState === 'running');
      const answers = await Promise.all(meant.map(r => probe(addr.get(r.id))));
      samples.push({
        at: new Date(start).toISOString(),
        tookMs: Date.now() - start,
        serving: answers.filter(a => a.page !== null).length,
        pages: Object.fromEntries(meant.map((r, i) => [r.name, answers[i]!.page ?? `(${answers[i]!.why})`])),
      });
      await new Promise(r => setTimeout(r, 100));
    }
  })();
  const stop = async () => {
    stopped = true;
    await loop;
    assert.ok(samples.length > 0, 'no sample was taken');
    const min = samples.reduce((m, s) => (s.serving < m.serving ? s : m));
    return { samples, min };
  };
  t.after(() =>
    stop().then(
      () => undefined,
      () => undefined,
    ),
  );
  return { stop };
}

/**
 * Asserts no replica failed since `since` (an ISO time): the availability
 * promise holds outside failures, and on a machine too loaded to answer its
 * health checks in time, replicas fail; this says so rather than a low count.
 */
async function assertNoFailureSince(since: string, what: string): Promise<void> {
  const events = (await fx.admin.get(`/v1/events?resource=${deploymentId}&limit=1000`)).body.items as {
    at: string;
    type: string;
    data: { instance?: string; reason?: string };
  }[];
  const failed = events.filter(e => e.type === 'deployment.replica-failed' && e.at >= since);
  assert.deepEqual(
    failed.map(e => `${e.data.instance}: ${e.data.reason}`),
    [],
    `${what}: replicas failed during the rollout`,
  );
}

/** Asserts availability never fell below replicas - maxUnavailable; answers the versions seen side by side. */
function assertAvailability(r: { samples: Sample[]; min: Sample }, what: string): Set<string> {
  assert.ok(
    r.min.serving >= REPLICAS - MAX_UNAVAILABLE,
    `${what}: only ${r.min.serving} replicas served at ${r.min.at} (${JSON.stringify(r.min.pages)}, in ${r.min.tookMs} ms), of ${r.samples.length} samples`,
  );
  const mixed = new Set<string>();
  for (const s of r.samples) {
    const versions = new Set(Object.values(s.pages).filter(p => !p.startsWith('(')));
    if (versions.size > 1) mixed.add([...versions].sort().join('+'));
  }
  return mixed;
}

/** Each revision's template hash. */
const hashes = async (): Promise<Map<number, string>> => {
  const items = (await fx.admin.get(`/v1/deployments/${deploymentId}/revisions?limit=1000`)).body.items as {
    revision: number;
    hash: string;
  }[];
  return new Map(items.map(r => [r.revision, r.hash]));
};

/**
 * Waits until the deployment is complete with exactly its replicas, each of
 * its current template (a replica of an older revision with the same template
 * is kept by a rollback), ready and serving `version`, and Podman holds their
 * containers and no others.
 */
async function allServe(version: string): Promise<ReplicaSeen[]> {
  let seen = '';
  return until(
    `every replica serving ${version}`,
    async () => {
      const [d, addr, hash] = await Promise.all([detail(), addresses(), hashes()]);
      const pages = await Promise.all(d.instances.map(r => served(addr.get(r.id))));
      const containers = await docker.listContainers({
        all: true,
        filters: { label: [`io.strata.host=${fx.hostId}`] },
      });
      seen = `revision ${d.revision} (${d.status.phase}): ${d.instances
        .map((r, i) => `${r.name} rev ${r.revision} ${r.state}/${r.desiredState} ready=${r.ready} serves ${pages[i]}`)
        .join('; ')}; ${containers.length} containers`;
      const good =
        d.status.phase === 'complete' &&
        d.instances.length === REPLICAS &&
        d.instances.every(
          (r, i) =>
            hash.get(r.revision) === hash.get(d.revision) &&
            r.ready &&
            r.desiredState === 'running' &&
            pages[i] === version,
        ) &&
        containers.length === REPLICAS &&
        containers.every(c => c.State === 'running');
      return good ? d.instances : undefined;
    },
    90_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last seen: ${seen}`);
  });
}

interface HistoryRow {
  revision: number;
  image: string;
  completed: boolean;
  copiedFrom: number | null;
  rolledBackFrom: number | null;
}

/** `strata rollout history web`: as JSON, and the table a user reads. */
const history = async (): Promise<{ rows: HistoryRow[]; table: string }> => {
  const json = ok(await strata('rollout', 'history', 'web', '-o', 'json'), 'rollout history -o json');
  const rows = (
    JSON.parse(json.stdout) as {
      revision: number;
      template: { image: string };
      completedAt: string | null;
      copiedFrom: number | null;
      rolledBackFrom: number | null;
    }[]
  ).map(v => ({
    revision: v.revision,
    image: v.template.image,
    completed: v.completedAt !== null,
    copiedFrom: v.copiedFrom,
    rolledBackFrom: v.rolledBackFrom,
  }));
  return { rows, table: ok(await strata('rollout', 'history', 'web'), 'rollout history').stdout };
};

before(async () => {
  fx = await startContainerFixture('rollout-node');
});
after(async () => {
  await fx.close();
  removeDir(dir);
});

test('v1 -> v2: a rolling upgrade keeps at least replicas - maxUnavailable serving, and ends with every replica on v2', async t => {
  assert.equal(await apply(spec({ version: 'v1' })), 'deployment/web created\n');
  deploymentId = (await fx.admin.get('/v1/deployments?name=web')).body.items[0].id;
  ok(await rolloutStatus(), 'rollout status of v1');
  const v1 = await allServe('v1');

  const since = new Date().toISOString();
  const sampler = sampleAvailability(t);
  assert.equal(await apply(spec({ version: 'v2' })), 'deployment/web configured\n');
  const status = ok(await rolloutStatus(), 'rollout status of v2');
  assert.match(status.stdout, /the rollout of revision 2 is complete$/m);
  const v2 = await allServe('v2');
  const sampled = await sampler.stop();
  await assertNoFailureSince(since, 'v1 -> v2');
  const mixed = assertAvailability(sampled, 'v1 -> v2');
  // The samples saw the rollout itself: v1 and v2 served side by side.
  assert.ok(mixed.has('v1+v2'), `no sample saw v1 and v2 side by side: ${[...mixed].join(', ')}`);
  assert.equal((await detail()).revision, 2);
  assert.deepEqual(v2.map(r => r.slot).sort(), [0, 1, 2, 3], 'one replica per slot');
  assert.equal(
    v2.some(r => v1.some(o => o.id === r.id)),
    false,
    'every replica was replaced',
  );
});

test('a v3 whose health check fails misses its deadline and rolls back to v2 by itself', async t => {
  const sampler = sampleAvailability(t);
  // Its health check asks a port nothing listens on.
  assert.equal(await apply(spec({ version: 'v3', checkPort: 9, deadlineSeconds: 15 })), 'deployment/web configured\n');
  const status = await rolloutStatus();
  assert.equal(status.code, 1, `rollout status: ${status.stdout}${status.stderr}`);
  assert.match(
    status.stdout,
    /the rollout of revision 3 missed its deadline and was rolled back$/m,
    status.stdout.slice(-1500),
  );
  const d = await detail();
  assert.equal(d.revision, 4, 'the rollback is a new revision');
  assert.equal(d.status.rolledBackFrom, 3);
  await allServe('v2');
  const mixed = assertAvailability(await sampler.stop(), 'v3 and its rollback');
  assert.ok(
    [...mixed].every(m => !m.includes('v1')),
    `v1 came back: ${[...mixed].join(', ')}`,
  );

  const { rows, table } = await history();
  assert.deepEqual(
    rows.map(r => [r.revision, r.completed, r.copiedFrom, r.rolledBackFrom]),
    [
      [4, true, 2, 3],
      [3, false, null, null],
      [2, true, null, null],
      [1, true, null, null],
    ],
  );
  assert.match(table, /^4\s.*rollback of 3 to 2/m);
  const revisions = (await fx.admin.get(`/v1/deployments/${deploymentId}/revisions`)).body.items as {
    revision: number;
    template: { env: Record<string, string>; healthCheck: { port: number } };
  }[];
  const current = revisions.find(r => r.revision === 4)!;
  assert.deepEqual([current.template.env.VERSION, current.template.healthCheck.port], ['v2', 8080]);
});

test('an image that does not exist fails the rollout, which goes back to the previous revision by itself', async t => {
  // Revisions: `good` runs v2, `bad` has the missing image, `back` is the rollback.
  const good = (await detail()).revision;
  const [bad, back] = [good + 1, good + 2];
  const sampler = sampleAvailability(t);
  assert.equal(
    await apply(spec({ version: 'v2', image: MISSING_IMAGE, deadlineSeconds: 15 })),
    'deployment/web configured\n',
  );
  const status = await rolloutStatus();
  assert.equal(status.code, 1, `rollout status: ${status.stdout}${status.stderr}`);
  assert.match(
    status.stdout,
    new RegExp(`the rollout of revision ${bad} missed its deadline and was rolled back$`, 'm'),
  );
  const d = await detail();
  assert.deepEqual([d.revision, d.status.rolledBackFrom], [back, bad]);
  await allServe('v2');
  assertAvailability(await sampler.stop(), 'the missing image and its rollback');

  // Its replicas failed on the pull, and were counted as failures; once rolled
  // back, no slot waited out the backoff those failures had set.
  const all = (await fx.admin.get(`/v1/events?resource=${deploymentId}&limit=1000`)).body.items as {
    type: string;
    data: { reason?: string; revision?: number; to?: string | number; message?: string };
  }[];
  const events = all.slice(all.findIndex(e => e.type === 'deployment.revision-created' && e.data.revision === bad));
  const failed = events.filter(e => e.type === 'deployment.replica-failed');
  assert.ok(failed.length > 0, 'no replica-failed event');
  for (const e of failed) assert.match(e.data.reason ?? '', /could not be pulled/, JSON.stringify(e.data));
  const rolledBack = events.findIndex(e => e.type === 'deployment.rolled-back');
  assert.ok(rolledBack > 0, 'no rolled-back event');
  assert.deepEqual(
    events
      .slice(rolledBack)
      .filter(e => e.type === 'deployment.phase' && /waits \d+ s after/.test(e.data.message ?? '')),
    [],
    'a slot of the rollback revision waited out the backoff of the failed one',
  );
  const { rows, table } = await history();
  assert.deepEqual(rows.slice(0, 2), [
    { revision: back, image: TEST_IMAGE, completed: true, copiedFrom: good, rolledBackFrom: bad },
    { revision: bad, image: MISSING_IMAGE, completed: false, copiedFrom: null, rolledBackFrom: null },
  ]);
  assert.match(table, new RegExp(`^${back}\\s.*rollback of ${bad} to ${good}`, 'm'));
});

test('rollout undo --to-revision 1 downgrades every replica to v1', async t => {
  // The undo gets a roomy deadline again (a strategy change alone makes no revision).
  assert.match(await apply(spec({ version: 'v2' })), /^deployment\/web (configured|unchanged)\n$/);
  const undone = (await detail()).revision + 1;

  const since = new Date().toISOString();
  const sampler = sampleAvailability(t);
  const undo = ok(await strata('rollout', 'undo', 'web', '--to-revision', '1'), 'rollout undo');
  assert.match(undo.stdout, new RegExp(`revision ${undone} runs the template of an earlier one`));
  const status = ok(await rolloutStatus(), 'rollout status of the undo');
  assert.match(status.stdout, new RegExp(`the rollout of revision ${undone} is complete$`, 'm'));
  await allServe('v1');
  const sampled = await sampler.stop();
  await assertNoFailureSince(since, 'undo to revision 1');
  const mixed = assertAvailability(sampled, 'undo to revision 1');
  assert.ok(mixed.has('v1+v2'), `no sample saw v1 and v2 side by side: ${[...mixed].join(', ')}`);
  const { rows, table } = await history();
  assert.deepEqual(rows[0], {
    revision: undone,
    image: TEST_IMAGE,
    completed: true,
    copiedFrom: 1,
    rolledBackFrom: null,
  });
  assert.match(table, new RegExp(`^${undone}\\s.*undo to 1`, 'm'));
});
