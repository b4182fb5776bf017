import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { InstanceCreate } from '../kinds/schemas.ts';
import { InstanceService } from '../services/instances.ts';
import { liveness } from './liveness.ts';
import { placer } from './placer.ts';
import { addHost, openRig, type Rig } from './testing.ts';

const HEARTBEAT_S = 5;

const spec = (name: string): InstanceCreate => ({
  project: 'default',
  name,
  kind: 'container',
  image: 'docker.io/library/alpine:3.20',
  resources: { vcpus: 1, memoryMib: 256 },
});

const rigOf = () =>
  openRig(
    s => placer(s),
    s => liveness(s, { heartbeatSeconds: HEARTBEAT_S }),
  );

const hostState = async (rig: Rig, id: string) =>
  (await rig.store.db.selectFrom('hosts').select('state').where('id', '=', id).executeTakeFirstOrThrow()).state;

const instanceOf = (rig: Rig, name: string) =>
  rig.store.db.selectFrom('instances').selectAll().where('name', '=', name).executeTakeFirstOrThrow();

/** Moves the rig's clock on, one liveness interval at a time, and lets the controllers act. */
async function wait(rig: Rig, seconds: number): Promise<void> {
  for (let t = 0; t < seconds * 1000; t += (HEARTBEAT_S * 1000) / 2) {
    rig.clock.advance((HEARTBEAT_S * 1000) / 2);
    await rig.runner.idle();
  }
}

/** A heartbeat as the agent API records it, at the rig's clock. */
const heartbeat = (rig: Rig, id: string) =>
  rig.store.write(({ trx }) =>
    trx
      .updateTable('hosts')
      .set({ last_heartbeat_at: new Date(rig.clock.now()).toISOString() })
      .where('id', '=', id)
      .execute(),
  );

test('a host whose heartbeats stop goes not-ready, then down, and what was active on it is lost', async () => {
  const rig = await rigOf();
  const svc = new InstanceService(rig.store);
  const silent = await addHost(rig, 'silent');
  await svc.create(rig.projectId, spec('web'), 'test');
  await rig.runner.idle();
  assert.equal((await instanceOf(rig, 'web')).host_id, silent);
  // Under three missed heartbeats nothing happens.
  await wait(rig, 3 * HEARTBEAT_S);
  assert.equal(await hostState(rig, silent), 'ready');
  await wait(rig, HEARTBEAT_S);
  assert.equal(await hostState(rig, silent), 'not-ready');
  assert.equal((await instanceOf(rig, 'web')).state, 'scheduled');
  // Twelve missed heartbeats are not yet down; a little more is.
  await wait(rig, 8 * HEARTBEAT_S);
  assert.equal(await hostState(rig, silent), 'not-ready');
  await wait(rig, HEARTBEAT_S / 2);
  assert.equal(await hostState(rig, silent), 'down');
  const web = await instanceOf(rig, 'web');
  assert.equal(web.state, 'lost');
  assert.match(web.message, /^host silent is down \(no heartbeat for \d+ s\)$/);
  const moves = rig.events.filter(e => e.type === 'host.state').map(e => JSON.parse(e.data) as { to: string });
  assert.deepEqual(
    moves.map(m => m.to),
    ['not-ready', 'down'],
  );
  assert.ok(
    rig.events.some(
      e =>
        e.type === 'instance.state' && e.resource_id === web.id && (JSON.parse(e.data) as { to: string }).to === 'lost',
    ),
  );
  await rig.close();
});

test('a heartbeating host stays ready; a host without an agent is left alone', async () => {
  const rig = await rigOf();
  const alive = await addHost(rig, 'alive');
  const manual = await addHost(rig, 'manual', { last_heartbeat_at: null });
  for (let i = 0; i < 20; i++) {
    await wait(rig, HEARTBEAT_S);
    await heartbeat(rig, alive);
  }
  assert.equal(await hostState(rig, alive), 'ready');
  assert.equal(await hostState(rig, manual), 'ready');
  assert.equal(rig.events.filter(e => e.type === 'host.state').length, 0);
  await rig.close();
});

test('a draining host that goes silent goes straight to down', async () => {
  const rig = await rigOf();
  const h = await addHost(rig, 'leaving', { state: 'draining' });
  await wait(rig, 4 * HEARTBEAT_S);
  assert.equal(await hostState(rig, h), 'draining');
  await wait(rig, 9 * HEARTBEAT_S);
  assert.equal(await hostState(rig, h), 'down');
  await rig.close();
});

test('an instance made active on a host already down is lost at the next pass', async () => {
  const rig = await rigOf();
  const svc = new InstanceService(rig.store);
  const h = await addHost(rig, 'gone');
  await svc.create(rig.projectId, spec('late'), 'test');
  await rig.runner.idle();
  await svc.setDesired((await instanceOf(rig, 'late')).id, 'stopped', 'test', () => undefined);
  await rig.store.write(({ trx }) =>
    trx.updateTable('instances').set({ state: 'stopped' }).where('name', '=', 'late').execute(),
  );
  await wait(rig, 13 * HEARTBEAT_S);
  assert.equal(await hostState(rig, h), 'down');
  // Stopped when its host went down: not lost. Started again there: lost.
  assert.equal((await instanceOf(rig, 'late')).state, 'stopped');
  const started = await svc.setDesired((await instanceOf(rig, 'late')).id, 'running', 'test', () => undefined);
  assert.equal(started.state, 'scheduled');
  await wait(rig, HEARTBEAT_S / 2);
  const late = await instanceOf(rig, 'late');
  assert.equal(late.state, 'lost');
  assert.equal(late.message, 'host gone is down');
  await rig.close();
});

test('silence counts from the server’s start: a host last heard before it is given the full time', async () => {
  const rig = await rigOf();
  // Heard ten minutes before this server (the rig's controllers) started.
  const long = new Date(rig.clock.now() - 600_000).toISOString();
  const quiet = await addHost(rig, 'quiet', { last_heartbeat_at: long });
  await rig.runner.idle();
  assert.equal(await hostState(rig, quiet), 'ready');
  await wait(rig, 3 * HEARTBEAT_S);
  assert.equal(await hostState(rig, quiet), 'ready');
  await wait(rig, HEARTBEAT_S);
  assert.equal(await hostState(rig, quiet), 'not-ready');
  const moved = rig.events.filter(e => e.type === 'host.state').map(e => JSON.parse(e.data).reason as string);
  assert.match(moved[0]!, /since the server started/);
  // Down after twelve missed heartbeats from the start, not at once.
  await wait(rig, 9 * HEARTBEAT_S);
  assert.equal(await hostState(rig, quiet), 'down');
  await rig.close();
});
