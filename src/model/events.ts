// Every event the control plane emits, as one union discriminated by `type`.
// Each type is about one kind of resource. The types that change what a host's
// agent must do carry `host`: the host whose agent is woken at once (null when
// no host holds the resource). Nothing else wakes an agent, so a new type that
// changes an agent's assignments must be listed in `AgentEvents`.

/** The kind of resource each event type is about. */
interface EventResources {
  'user.created': 'user';
  'user.deleted': 'user';
  'token.created': 'token';
  'token.deleted': 'token';
  'join-token.created': 'join-token';
  'join-token.deleted': 'join-token';
  'project.created': 'project';
  'project.updated': 'project';
  'project.deleted': 'project';
  'member.set': 'project';
  'member.removed': 'project';
  'secret.created': 'secret';
  'secret.updated': 'secret';
  'secret.deleted': 'secret';
  'group.created': 'group';
  'group.deleted': 'group';
  'host.created': 'host';
  'host.registered': 'host';
  'host.updated': 'host';
  'host.state': 'host';
  'host.deleted': 'host';
  'instance.created': 'instance';
  'instance.rescheduled': 'instance';
  'instance.unplaced': 'instance';
  'instance.scheduled': 'instance';
  'instance.start-requested': 'instance';
  'instance.stop-requested': 'instance';
  'instance.pause-requested': 'instance';
  'instance.resume-requested': 'instance';
  'instance.restart-requested': 'instance';
  'instance.evict-requested': 'instance';
  'instance.state': 'instance';
  'instance.health': 'instance';
  'instance.deleting': 'instance';
  'instance.deleted': 'instance';
}

export type EventType = keyof EventResources;

/** Event types that change what a host's agent must do: they name that host. */
export type AgentEvents =
  | `host.${'created' | 'registered' | 'updated' | 'state' | 'deleted'}`
  | `instance.${'scheduled' | 'start-requested' | 'stop-requested' | 'pause-requested' | 'resume-requested'}`
  | `instance.${'restart-requested' | 'evict-requested' | 'deleting' | 'deleted'}`;

interface EventCommon {
  projectId: string | null;
  resourceId: string;
  actor: string;
  data?: Record<string, unknown>;
}

/** What a write emits (`WriteContext.emit`). */
export type EventInput = {
  [T in EventType]: EventCommon & { type: T; resourceType: EventResources[T] } & (T extends AgentEvents
      ? { /** the host whose agent must hear of this at once; null when none holds the resource */ host: string | null }
      : { host?: never });
}[EventType];
