// One runner on the sim driver with a recording stand-in for the server: the
// paths an agent against a real server rarely shows (specs arriving while the
// runner is busy, a crash in flight, a forced removal).
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { pino } from 'pino';
import type { InstanceSpec } from '../drivers/driver.ts';
import { SimDriver } from '../drivers/sim/driver.ts';
import { AgentApiError } from './api-client.ts';
import { deliver, InstanceRunner, type RunnerContext } from './instance-runner.ts';

interface Sent {
  state: string;
  message?: string | undefined;
}

/** `refuse` answers a report instead of the server taking it: an error to throw, or nothing to take it. */
function rig(refuse: (state: string) => Error | undefined = () => undefined) {
  const sent: Sent[] = [];
  const attempts: string[] = [];
  /** Each health the runner reports, in order. */
  const healths: string[] = [];
  const ctx: RunnerContext = {
    api: {
      report: async (_id, state, extra = {}) => {
        attempts.push(state);
        const err = refuse(state);
        if (err) throw err;
        sent.push({ state, message: extra.message });
        return {};
      },
      observe: async (_id, observed) => {
        if (observed.health) healths.push(observed.health.status);
        return {};
      },
    },
    log: pino({ level: 'silent' }),
  };
  const driver = new SimDriver({ kind: 'container' });
  const states = () => sent.map(s => s.state);
  const until = async (what: string, ok: () => boolean | Promise<boolean>) => {
    const end = Date.now() + 5000;
    while (!(await ok())) {
      assert.ok(Date.now() < end, `timed out waiting for ${what}; sent ${JSON.stringify(sent)}`);
      await new Promise(r => setTimeout(r, 2));
    }
  };
  return { sent, attempts, healths, ctx, driver, states, until };
}

function spec(over: Partial<InstanceSpec> = {}): InstanceSpec {
  return {
    id: 'ins_1',
    kind: 'container',
    image: 'busybox',
    host: 'hst_1',
    env: {},
    desiredState: 'running',
    state: 'scheduled',
    restartRequestedAt: null,
    restartPolicy: { policy: 'never' },
    restarts: 0,
    stopGraceSeconds: 10,
    stopGraceOverride: null,
    healthCheck: null,
    ...over,
  } as InstanceSpec;
}

test('specs that arrive while the runner is busy wait, and only the newest runs', async () => {
  const { sent, ctx, driver, states, until } = rig();
  const runner = new InstanceRunner(spec(), driver, ctx);
  runner.update(spec({ env: { SIM_START_MS: '30' } }));
  // Two answers while the start is under way: the first is superseded.
  runner.update(spec({ state: 'starting', desiredState: 'paused' }));
  runner.update(spec({ state: 'starting', desiredState: 'stopped' }));
  await until('stopped', () => states().includes('stopped'));
  // The second `starting` is the start's progress (a simulated pull); no pause in between.
  assert.deepEqual(states(), ['starting', 'starting', 'running', 'stopping', 'stopped']);
  assert.equal(sent[1]?.message, 'pulling busybox (simulated)');
  assert.equal((await driver.inspect('ins_1')).state, 'stopped');
});

test('a crash lets go of the work in flight and fails the instance; the next answer is acted on at once', async () => {
  const { sent, ctx, driver, states, until } = rig();
  const runner = new InstanceRunner(spec(), driver, ctx);
  runner.update(spec({ env: { SIM_START_MS: '200' } }));
  await until('starting', () => states().includes('starting'));
  runner.crashed(new Error('kaboom'));
  await until('failed', () => states().includes('failed'));
  assert.equal(sent.at(-1)?.message, 'the agent hit an unexpected error handling this instance: kaboom');
  // Not waiting behind the start still under way: a delete goes through now.
  runner.update(spec({ state: 'deleting', desiredState: 'deleted' }));
  await until('deleted', () => states().includes('deleted'));
  assert.equal(states().includes('running'), false);
  // The abandoned start ends in its own time.
  await until('the abandoned start over', () => states().includes('running'));
  runner.close();
  await driver.destroy('ins_1');
});

test('an instance forgotten by force has its workload removed', async () => {
  const { ctx, driver, states, until } = rig();
  const runner = new InstanceRunner(spec(), driver, ctx);
  runner.update(spec());
  await until('running', () => states().includes('running'));
  runner.forget();
  await until('workload gone', async () => (await driver.inspect('ins_1')).state === 'absent');
  assert.deepEqual(states(), ['starting', 'running']);
});

/** A connection reset, as a client sees a server that dropped it (over its connection cap, restarting). */
const reset = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });

test('a report that does not reach the server is made again until it does, so the instance converges', async () => {
  const failures = new Map([
    ['starting', 2],
    ['running', 1],
  ]);
  const { attempts, ctx, driver, states, until } = rig(state => {
    const left = failures.get(state) ?? 0;
    failures.set(state, left - 1);
    if (left <= 0) return undefined;
    return state === 'running' ? new AgentApiError(503, 'unavailable', 'the store is busy; retry') : reset();
  });
  const runner = new InstanceRunner(spec(), driver, ctx);
  runner.update(spec());
  await until('running', () => states().includes('running'));
  assert.deepEqual(states(), ['starting', 'running']);
  assert.deepEqual(attempts, ['starting', 'starting', 'starting', 'running', 'running']);
  runner.close();
});

test("a report the server refuses (an illegal transition) is not made again; the runner's next report still goes", async () => {
  const { attempts, ctx, driver, states, until } = rig(state =>
    state === 'starting' ? new AgentApiError(409, 'conflict', 'illegal transition running -> starting') : undefined,
  );
  const runner = new InstanceRunner(spec(), driver, ctx);
  runner.update(spec());
  await until('running', () => states().includes('running'));
  assert.deepEqual(attempts, ['starting', 'running']);
  runner.close();
});

test('a report being made again is given up once its instance is let go', async () => {
  const { ctx } = rig();
  const stop = new AbortController();
  let tries = 0;
  const delivering = deliver(
    ctx,
    'ins_1',
    'running',
    async () => {
      tries++;
      if (tries === 2) stop.abort();
      throw reset();
    },
    stop.signal,
  );
  await delivering;
  assert.equal(tries, 2);
});

test('health checks of a running workload go on through a repeated running report and an agent restart', async () => {
  const { ctx, driver, healths, states, until } = rig();
  const healthCheck = {
    type: 'exec',
    command: ['true'],
    intervalSeconds: 1,
    retries: 1,
  } as InstanceSpec['healthCheck'];
  const runner = new InstanceRunner(spec({ healthCheck }), driver, ctx);
  runner.update(spec({ healthCheck }));
  await until('healthy', () => healths.includes('healthy'));
  assert.deepEqual(healths, ['starting', 'healthy']);
  // An answer sent before the server took the running report: reported again, checks kept.
  runner.update(spec({ healthCheck, state: 'starting' }));
  await runner.idle();
  assert.deepEqual(states(), ['starting', 'running', 'running']);
  assert.deepEqual(healths, ['starting', 'healthy']);
  runner.close();
  // A new agent finds the workload running: its checks carry on from the server's health.
  const healthy = { status: 'healthy', failingStreak: 0, changedAt: new Date().toISOString(), output: '' } as const;
  const again = new InstanceRunner(spec({ healthCheck }), driver, ctx);
  again.update(
    spec({ healthCheck, state: 'running', observed: { address: null, ports: [], health: healthy, accelerator: null } }),
  );
  await again.idle();
  again.close();
  assert.deepEqual(healths, ['starting', 'healthy']);
  await driver.destroy('ins_1');
});
