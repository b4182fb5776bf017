// Restart policies: whether an instance that exited is started again (the agent
// does it; a deployment's controller leaves such a replica alone), and after
// how long. Exponential backoff from 1 s, doubling per restart, capped at 5 min.
import type { RestartPolicy } from './schemas.ts';

export const DEFAULT_MAX_RETRIES = 5;
const MAX_DELAY_SECONDS = 300;

export type RestartDecision = { restart: false } | { restart: true; delaySeconds: number };

export function restartDecision(policy: RestartPolicy, exitCode: number, restartsSoFar: number): RestartDecision {
  const delaySeconds = Math.min(MAX_DELAY_SECONDS, 2 ** restartsSoFar);
  if (policy.policy === 'always') return { restart: true, delaySeconds };
  if (policy.policy === 'on-failure' && exitCode !== 0 && restartsSoFar < (policy.maxRetries ?? DEFAULT_MAX_RETRIES)) {
    return { restart: true, delaySeconds };
  }
  return { restart: false };
}
