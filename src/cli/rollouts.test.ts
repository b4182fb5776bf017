import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { Deployment } from './client.ts';
import { outcomeOf, progressText } from './rollouts.ts';

const deployment = (o: { revision?: number; phase?: string; rolledBackFrom?: number | null; seen?: number }) =>
  ({
    name: 'web',
    replicas: 4,
    revision: o.revision ?? 2,
    generation: 3,
    status: {
      observedGeneration: o.seen ?? 3,
      replicas: 5,
      updatedReplicas: 2,
      readyReplicas: 4,
      availableReplicas: 4,
      phase: o.phase ?? 'progressing',
      message: '',
      replacements: 0,
      backoff: [],
      rolledBackFrom: o.rolledBackFrom ?? null,
    },
  }) as unknown as Deployment;

test('a rollout ends complete, failed or rolled back; otherwise it goes on', () => {
  assert.equal(outcomeOf(deployment({}), 2), undefined);
  assert.equal(outcomeOf(deployment({ phase: 'complete' }), 2), 'complete');
  assert.equal(outcomeOf(deployment({ phase: 'complete', seen: 2 }), 2), undefined, 'not yet seen by the controller');
  assert.equal(outcomeOf(deployment({ phase: 'failed' }), 2), 'failed');
  assert.equal(outcomeOf(deployment({ revision: 3, rolledBackFrom: 2 }), 2), 'rolled-back');
  assert.equal(outcomeOf(deployment({ revision: 3 }), 2), undefined, 'a newer revision is followed, not a failure');
});

test('progress: a bar on a terminal, the counts either way', () => {
  assert.equal(progressText(deployment({}), false), 'revision 2: 2 of 4 updated, 4 available, 5 live (progressing)');
  assert.match(progressText(deployment({}), true), /^\[#{15}\.{15}\] revision 2: /);
});
