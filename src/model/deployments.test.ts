import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { defaultStrategy, fullStrategy, resolveStrategy, strategyProblems } from './deployments.ts';

test('percentages resolve as Kubernetes reads them: surge rounds up, unavailable down', () => {
  assert.deepEqual(resolveStrategy({ maxSurge: '25%', maxUnavailable: '25%' }, 10), { maxSurge: 3, maxUnavailable: 2 });
  assert.deepEqual(resolveStrategy({ maxSurge: '25%', maxUnavailable: '25%' }, 1), { maxSurge: 1, maxUnavailable: 0 });
  assert.deepEqual(resolveStrategy({ maxSurge: 2, maxUnavailable: 5 }, 3), { maxSurge: 2, maxUnavailable: 3 });
  // Both coming to 0 would stop a rollout: one replica may be unavailable.
  assert.deepEqual(resolveStrategy({ maxSurge: '0%', maxUnavailable: '10%' }, 3), { maxSurge: 0, maxUnavailable: 1 });
  assert.deepEqual(resolveStrategy({ maxSurge: 0, maxUnavailable: '100%' }, 0), { maxSurge: 0, maxUnavailable: 0 });
});

test('an impossible strategy is refused, naming its fields', () => {
  assert.deepEqual(strategyProblems(defaultStrategy), []);
  for (const [maxSurge, maxUnavailable] of [
    [0, 0],
    ['0%', 0],
    [0, '0%'],
  ] as const)
    assert.deepEqual(
      strategyProblems(fullStrategy({ maxSurge, maxUnavailable })).map(p => p.field),
      ['body.strategy'],
    );
  assert.deepEqual(strategyProblems(fullStrategy({ minHealthySeconds: 60, progressDeadlineSeconds: 60 })), [
    {
      field: 'body.strategy.progressDeadlineSeconds',
      message: '(60) must be more than minHealthySeconds (60): no new replica could become available in time',
    },
  ]);
});
