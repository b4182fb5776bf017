// How a simulated workload behaves, read from its environment. Every variable
// is optional; without any, the workload starts at once and runs until stopped.
//
//   SIM_START_MS=N           starting takes N ms (reported as progress, like an image pull)
//   SIM_START_FAIL=MESSAGE   starting fails with MESSAGE (nothing is left behind)
//   SIM_EXIT_AFTER_MS=N      the workload exits by itself N ms after each start...
//   SIM_EXIT_CODE=C          ...with exit code C (default 0; 0 reads as stopped, others as failed)
//   SIM_STOP=hang            the workload ignores the polite stop signal: killed (137) after the grace
//   SIM_STOP_MS=N            the workload takes N ms to exit after the polite signal (143), killed
//                            (137) if that is longer than the grace
//   SIM_LOG=TEXT             TEXT (lines split on \n) is written to stdout at each start
//
// A malformed value is a failed start that says which variable is wrong, so a
// typo never reads as a workload that behaves.
import type { InstanceSpec } from '../driver.ts';

export interface Behaviour {
  startMs: number;
  startFail: string | undefined;
  exitAfterMs: number | undefined;
  exitCode: number;
  /** Milliseconds until the workload exits after a polite stop; Infinity: it never does. */
  stopMs: number;
  log: string[];
}

export class BehaviourError extends Error {}

function count(env: Record<string, string>, key: string, max: number): number | undefined {
  const v = env[key];
  if (v === undefined) return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!(n <= max)) throw new BehaviourError(`${key} must be a whole number from 0 to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

export function behaviourOf(spec: Pick<InstanceSpec, 'env'>): Behaviour {
  const env = spec.env;
  const stop = env.SIM_STOP;
  if (stop !== undefined && stop !== 'hang')
    throw new BehaviourError(`SIM_STOP must be "hang", got ${JSON.stringify(stop)}`);
  const day = 86_400_000;
  return {
    startMs: count(env, 'SIM_START_MS', day) ?? 0,
    startFail: env.SIM_START_FAIL,
    exitAfterMs: count(env, 'SIM_EXIT_AFTER_MS', day),
    exitCode: count(env, 'SIM_EXIT_CODE', 255) ?? 0,
    stopMs: stop === 'hang' ? Number.POSITIVE_INFINITY : (count(env, 'SIM_STOP_MS', day) ?? 0),
    log: env.SIM_LOG === undefined ? [] : env.SIM_LOG.split('\n'),
  };
}
