import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { currentTally, measured } from '../lib/cpu-account.ts';
import type { EventType } from '../model/events.ts';
import { type Controller, type Pass, Runner } from './runner.ts';
import { ManualClock, ManualEvents } from './testing.ts';

interface Seen {
  events: string[];
  resync: boolean;
  now: number;
}

/** A controller that records its passes; `gate`, when set, holds a pass until released. */
function recorder(name: string, wakeOn: EventType[], resyncMs = 60_000) {
  const passes: Seen[] = [];
  let running = 0;
  let overlapped = false;
  let gate: Promise<void> | undefined;
  let fail = 0;
  const c: Controller = {
    name,
    wakeOn,
    resyncMs,
    async reconcile(p: Pass) {
      running++;
      overlapped ||= running > 1;
      passes.push({ events: p.events.map(e => e.resource_id), resync: p.resync, now: p.now });
      try {
        await gate;
        if (fail > 0) {
          fail--;
          throw new Error(`${name} broke`);
        }
      } finally {
        running--;
      }
    },
  };
  return {
    c,
    passes,
    overlapped: () => overlapped,
    hold(): () => void {
      let release!: () => void;
      gate = new Promise(r => (release = r));
      return () => {
        gate = undefined;
        release();
      };
    },
    failNext(n = 1) {
      fail = n;
    },
  };
}

function setup(...controllers: Controller[]) {
  const clock = new ManualClock();
  const events = new ManualEvents();
  const errors: { obj: object; msg: string }[] = [];
  const runner = new Runner({
    subscribe: events.subscribe,
    clock,
    log: { error: (obj, msg) => errors.push({ obj, msg }) },
  });
  for (const c of controllers) runner.add(c);
  runner.start();
  return { clock, events, errors, runner };
}

test('the first pass is a full one; many events then wake one pass that holds them all, in order', async () => {
  const r = recorder('a', ['instance.created']);
  const { events, runner } = setup(r.c);
  await runner.idle();
  assert.deepEqual(r.passes, [{ events: [], resync: true, now: r.passes[0]!.now }]);
  for (let i = 0; i < 100; i++) events.publish('instance.created', `i${i}`);
  events.publish('user.created', 'u1');
  await runner.idle();
  assert.equal(r.passes.length, 2);
  assert.deepEqual(
    r.passes[1]!.events,
    Array.from({ length: 100 }, (_, i) => `i${i}`),
  );
  assert.equal(r.passes[1]!.resync, false);
  await runner.stop();
});

test('events of types a controller does not wake on start no pass', async () => {
  const r = recorder('a', ['host.state']);
  const { events, runner } = setup(r.c);
  await runner.idle();
  events.publish('instance.created');
  events.publish('host.updated');
  await runner.idle();
  assert.equal(r.passes.length, 1);
  await runner.stop();
});

test('a pass never overlaps itself: what comes during one is the next pass', async () => {
  const r = recorder('a', ['instance.created']);
  const { events, runner } = setup(r.c);
  await runner.idle();
  const release = r.hold();
  events.publish('instance.created', 'x1');
  while (r.passes.length < 2) await new Promise(res => setImmediate(res));
  events.publish('instance.created', 'x2');
  events.publish('instance.created', 'x3');
  // Many turns pass; the held pass still runs alone.
  for (let i = 0; i < 20; i++) await new Promise(res => setImmediate(res));
  assert.equal(r.passes.length, 2);
  release();
  await runner.idle();
  assert.deepEqual(
    r.passes.map(p => p.events),
    [[], ['x1'], ['x2', 'x3']],
  );
  assert.equal(r.overlapped(), false);
  await runner.stop();
});

test('with a batch period, a pass that follows another waits out the rest of it and holds what came meanwhile; one after a quiet spell does not wait', {
  timeout: 10_000,
}, async () => {
  const r = recorder('a', ['instance.created']);
  const clock = new ManualClock();
  const events = new ManualEvents();
  const waits: number[] = [];
  let endWait: (() => void) | undefined;
  const runner = new Runner({
    subscribe: events.subscribe,
    clock,
    log: { error: () => assert.fail('no pass fails') },
    sleep: ms => {
      waits.push(ms);
      return new Promise(res => (endWait = res));
    },
  });
  runner.add({ ...r.c, batchMs: 10_000 });
  runner.start();
  await runner.idle();
  assert.deepEqual(waits, [], 'the first pass does not wait');
  const release = r.hold();
  events.publish('instance.created', 'x1');
  while (r.passes.length < 2) await new Promise(res => setImmediate(res));
  events.publish('instance.created', 'x2');
  release();
  while (waits.length === 0) await new Promise(res => setImmediate(res));
  assert.equal(waits.length, 1);
  assert.ok(waits[0]! > 0 && waits[0]! <= 10_000, `waits ${waits[0]} ms`);
  events.publish('instance.created', 'x3');
  assert.equal(r.passes.length, 2, 'no pass while the batch period runs');
  endWait!();
  await runner.idle();
  assert.deepEqual(
    r.passes.map(p => p.events),
    [[], ['x1'], ['x2', 'x3']],
  );
  // Quiet now: the next event starts a pass without waiting.
  events.publish('instance.created', 'x4');
  await runner.idle();
  assert.equal(waits.length, 1);
  assert.deepEqual(r.passes.at(-1)!.events, ['x4']);
  await runner.stop();
});

test('each controller is resynced on its own interval, with the clock it is given', async () => {
  const fast = recorder('fast', [], 1_000);
  const slow = recorder('slow', [], 5_000);
  const { clock, runner } = setup(fast.c, slow.c);
  await runner.idle();
  const t0 = clock.now();
  for (let i = 0; i < 5; i++) {
    clock.advance(1_000);
    await runner.idle();
  }
  assert.deepEqual(
    fast.passes.map(p => [p.resync, p.now - t0]),
    [
      [true, 0],
      [true, 1_000],
      [true, 2_000],
      [true, 3_000],
      [true, 4_000],
      [true, 5_000],
    ],
  );
  assert.deepEqual(
    slow.passes.map(p => p.now - t0),
    [0, 5_000],
  );
  await runner.stop();
});

test('a failing pass is logged; the runner and other controllers go on, and the next wake-up is a full pass', async () => {
  const bad = recorder('bad', ['instance.created']);
  const good = recorder('good', ['instance.created']);
  const { clock, events, errors, runner } = setup(bad.c, good.c);
  await runner.idle();
  bad.failNext();
  events.publish('instance.created', 'i1');
  await runner.idle();
  assert.equal(errors.length, 1);
  assert.match(errors[0]!.msg, /reconcile failed/);
  assert.deepEqual(errors[0]!.obj, { err: new Error('bad broke'), controller: 'bad' });
  assert.deepEqual(good.passes.at(-1)?.events, ['i1']);
  // No retry on its own: the next wake-up retries, as a full pass.
  assert.equal(bad.passes.length, 2);
  events.publish('instance.created', 'i2');
  await runner.idle();
  assert.deepEqual(bad.passes.at(-1), { events: ['i2'], resync: true, now: clock.now() });
  // And a pass after that is an ordinary one again.
  events.publish('instance.created', 'i3');
  await runner.idle();
  assert.deepEqual(bad.passes.at(-1)?.resync, false);
  // A failure at a resync is retried at the next resync.
  bad.failNext();
  clock.advance(60_000);
  await runner.idle();
  clock.advance(60_000);
  await runner.idle();
  assert.equal(errors.length, 2);
  assert.equal(bad.passes.length, 6);
  await runner.stop();
});

test('events that arrive while a pass fails wake the retry', async () => {
  const r = recorder('a', ['instance.created']);
  const { events, errors, runner } = setup(r.c);
  await runner.idle();
  const release = r.hold();
  r.failNext();
  events.publish('instance.created', 'x1');
  while (r.passes.length < 2) await new Promise(res => setImmediate(res));
  events.publish('instance.created', 'x2');
  release();
  await runner.idle();
  assert.equal(errors.length, 1);
  assert.deepEqual(r.passes.at(-1), { events: ['x2'], resync: true, now: r.passes.at(-1)!.now });
  await runner.stop();
});

test('stop waits for the running pass, then nothing wakes a controller', async () => {
  const r = recorder('a', ['instance.created'], 1_000);
  const { clock, events, runner } = setup(r.c);
  await runner.idle();
  const release = r.hold();
  events.publish('instance.created', 'x1');
  while (r.passes.length < 2) await new Promise(res => setImmediate(res));
  let stopped = false;
  const stopping = runner.stop().then(() => (stopped = true));
  for (let i = 0; i < 20; i++) await new Promise(res => setImmediate(res));
  assert.equal(stopped, false);
  release();
  await stopping;
  events.publish('instance.created', 'x2');
  clock.advance(10_000);
  await runner.idle();
  assert.equal(r.passes.length, 2);
});

test('a controller is added once, and before the runner starts', () => {
  const a = recorder('a', []);
  const runner = new Runner({ subscribe: () => () => undefined, log: { error: () => undefined } });
  runner.add(a.c);
  assert.throws(() => runner.add(a.c), /added twice/);
  runner.start();
  assert.throws(() => runner.add(recorder('b', []).c), /before the runner starts/);
  return runner.stop();
});

test("stats count each controller's passes, their time and the CPU of the writes charged to them", async () => {
  const busy = recorder('busy', ['instance.created']);
  const idle = recorder('idle', ['user.created']);
  const work: Controller = {
    ...busy.c,
    async reconcile(p) {
      await busy.c.reconcile(p);
      // What the store does with a write queued from a pass: charge it to the pass's tally.
      await measured(currentTally(), async () => {
        const start = process.cpuUsage();
        for (;;) {
          const d = process.cpuUsage(start);
          if (d.user + d.system >= 20_000) return;
        }
      });
    },
  };
  const { events, runner } = setup(work, idle.c);
  await runner.idle();
  events.publish('instance.created', 'i1');
  await runner.idle();
  const s = runner.stats();
  assert.equal(s.busy!.passes, 2);
  assert.ok(s.busy!.writeCpuMs >= 40, `charged ${s.busy!.writeCpuMs} ms for two passes of 20`);
  // The process's CPU counts every thread: two cores give 20 ms of it in 10 ms at least.
  assert.ok(s.busy!.busyMs >= 20, `busy ${s.busy!.busyMs} ms`);
  assert.equal(s.idle!.passes, 1);
  assert.ok(s.idle!.writeCpuMs < 5, `the idle controller was charged ${s.idle!.writeCpuMs} ms`);
  await runner.stop();
});
