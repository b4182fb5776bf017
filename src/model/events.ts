// Every event the control plane emits, as one union discriminated by `type`.
// Each type is about one kind of resource and has one shape of data (what the
// API's events show; names, never secrets). The types that change what a host's
// agent must do carry `host`: the host whose agent is woken at once (null when
// no host holds the resource). Nothing else wakes an agent, so a new type that
// changes an agent's assignments must be listed in `AgentEvents`.

/** Data with nothing in it: it may be left out. */
type Empty = Record<string, never>;
type Named = { name: string };
/** A change of state: of an instance (with its message and exit code), or of a host (with why). */
type InstanceMove = {
  from: string;
  to: string;
  message: string;
  exitCode: number | null | undefined;
  restart?: number;
};
type HostMove = { from: string; to: string; reason: string };
type Assignment = { hostId: string | null };
/** A deployment's replica that ended or was lost, and when its slot is filled again. */
type ReplicaFailure = { slot: number; instance: string; reason: string; failures: number; retryInSeconds: number };

type Preempted = {
  instance: string;
  by: string | null;
  byPriority: number;
  sameProject: boolean;
  hostId: string;
  message: string;
};

/** Each event type: the kind of resource it is about, and what its data holds (the API's events show it as is). */
interface EventShapes {
  'user.created': ['user', Named];
  'user.deleted': ['user', Named];
  'token.created': ['token', Named & { userId: string }];
  'token.deleted': ['token', Named];
  'join-token.created': ['join-token', { description: string }];
  'join-token.deleted': ['join-token', Empty];
  'project.created': ['project', Named];
  'project.updated': ['project', { fields: string[] }];
  'project.deleted': ['project', Named];
  'member.set': ['project', { user: string; role: string }];
  'member.removed': ['project', { user: string }];
  'secret.created': ['secret', Named];
  'secret.updated': ['secret', Named];
  'secret.deleted': ['secret', Named];
  'group.created': ['group', Named & { policy: string; level: string }];
  'group.deleted': ['group', Named];
  'host.created': ['host', Named];
  'host.registered': ['host', Named & { drivers: string[] }];
  'host.updated': ['host', { fields: string[]; state: string | undefined }];
  'host.state': ['host', HostMove];
  'host.deleted': ['host', Named];
  'node.enrolled': ['node', Named & { conductor: string }];
  'node.state': ['node', { from: string; to: string; reason: string }];
  'node.maintenance': ['node', { on: boolean; reason: string }];
  'node.deleted': ['node', Named];
  'instance.created': ['instance', Named & { kind: string; image: string }];
  'instance.rescheduled': ['instance', Empty];
  /** No host can take the instance: it starts waiting for capacity, or (not waiting) it fails. */
  'instance.unplaced': ['instance', { reason: string; waiting: boolean }];
  'instance.scheduled': ['instance', Assignment];
  'instance.start-requested': ['instance', Assignment];
  'instance.stop-requested': ['instance', Assignment];
  'instance.pause-requested': ['instance', Assignment];
  'instance.resume-requested': ['instance', Assignment];
  'instance.restart-requested': ['instance', Assignment];
  'instance.evict-requested': ['instance', { host: string; reason: string }];
  /**
   * The instance is stopped on its host to make room for one of higher
   * priority, then waits in pending: `by` names the preemptor when it is of
   * the same project (null otherwise: its priority alone is said).
   */
  'instance.preempted': ['instance', Preempted];
  /** The instance fits nowhere and preempts instances of lower priority on a host: those of its own project named. */
  'instance.preempting': ['instance', { hostId: string; victims: string[]; otherProjects: number }];
  'instance.state': ['instance', InstanceMove];
  'instance.health': ['instance', { from: string | null; to: string; failingStreak: number; output: string }];
  'instance.deleting': ['instance', Assignment];
  'instance.deleted': ['instance', Named & Assignment & { forced?: true }];
  'deployment.created': ['deployment', Named & { replicas: number; revision: number }];
  'deployment.updated': ['deployment', { fields: string[]; revision: number }];
  'deployment.scaled': ['deployment', { from: number; to: number }];
  'deployment.deleted': ['deployment', Named & { replicas: number }];
  'deployment.revision-created': ['deployment', { revision: number; hash: string }];
  'deployment.replica-failed': ['deployment', ReplicaFailure];
  'deployment.phase': ['deployment', { from: string; to: string; message: string }];
  /** a new revision copying an older one's template: `automatic` after a missed progress deadline */
  'deployment.promoted': ['deployment', { revision: number; automatic: boolean }];
  'deployment.rolled-back': ['deployment', { from: number; to: number; revision: number; automatic: boolean }];
  'deployment.replica-replaced': [
    'deployment',
    { slot: number; instance: string; replacement: string; reason: string },
  ];
}

export type EventType = keyof EventShapes;

/** Event types that change what a host's agent must do: they name that host. */
export type AgentEvents =
  | `host.${'created' | 'registered' | 'updated' | 'state' | 'deleted'}`
  | `node.${'enrolled' | 'state' | 'maintenance' | 'deleted'}`
  | `instance.${'scheduled' | 'start-requested' | 'stop-requested' | 'pause-requested' | 'resume-requested'}`
  | `instance.${'restart-requested' | 'evict-requested' | 'preempted' | 'deleting' | 'deleted'}`;

interface EventCommon {
  projectId: string | null;
  resourceId: string;
  actor: string;
}

/** What a write emits (`WriteContext.emit`). */
export type EventInput = {
  [T in EventType]: EventCommon & { type: T; resourceType: EventShapes[T][0] } & (Empty extends EventShapes[T][1]
      ? { data?: EventShapes[T][1] }
      : { data: EventShapes[T][1] }) &
    (T extends AgentEvents
      ? { /** the host whose agent must hear of this at once; null when none holds the resource */ host: string | null }
      : { host?: never });
}[EventType];
