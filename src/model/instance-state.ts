// The observed-state machine of an instance, shared by every kind. A report or
// request that would take an instance along an edge not listed here is refused.
export const instanceStates = [
  'pending',
  'scheduled',
  'starting',
  'running',
  'paused',
  'stopping',
  'stopped',
  'failed',
  'lost',
  'deleting',
  'deleted',
] as const;
export type InstanceState = (typeof instanceStates)[number];

export const desiredStates = ['running', 'paused', 'stopped', 'deleted'] as const;
export type DesiredState = (typeof desiredStates)[number];

// `lost`: the instance's host stopped heartbeating (it went down) while the
// instance was active there; nobody knows what became of it until the host's
// agent is back and reports what it sees.
const edges: Record<InstanceState, readonly InstanceState[]> = {
  pending: ['scheduled', 'failed', 'deleting', 'deleted'],
  scheduled: ['starting', 'running', 'stopped', 'failed', 'deleting', 'pending', 'lost'],
  starting: ['running', 'stopping', 'stopped', 'failed', 'deleting', 'lost'],
  running: ['stopping', 'stopped', 'failed', 'deleting', 'starting', 'paused', 'lost'],
  paused: ['running', 'stopping', 'stopped', 'failed', 'deleting', 'lost'],
  stopping: ['stopped', 'failed', 'deleting', 'lost'],
  // -> pending: a preempted instance, once stopped, leaves its host to be placed again.
  stopped: ['starting', 'running', 'failed', 'deleting', 'scheduled', 'pending'],
  failed: ['starting', 'running', 'scheduled', 'pending', 'deleting', 'stopped'],
  lost: ['running', 'paused', 'stopped', 'failed', 'starting', 'scheduled', 'deleting'],
  deleting: ['deleted', 'failed'],
  deleted: [],
};

export function canTransition(from: InstanceState, to: InstanceState): boolean {
  return from === to || edges[from].includes(to);
}

export function isInstanceState(value: string): value is InstanceState {
  return (instanceStates as readonly string[]).includes(value);
}

/** States in which an instance may be holding resources on its host. */
export const activeStates: readonly InstanceState[] = ['scheduled', 'starting', 'running', 'paused', 'stopping'];
