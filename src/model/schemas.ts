// Request and response schemas of the public API. They validate requests, shape
// responses (fast serialization, no stray fields) and become the OpenAPI document.
import { Type, type Static, type TSchema } from 'typebox';
import { healthCheckTypes } from './capabilities.ts';
import { desiredStates, instanceStates } from './instance-state.ts';
import { DISK_URL_MAX_LENGTH, DISK_URL_PATTERN } from './disk-url.ts';
import { IMAGE_REF_PATTERN } from './image-ref.ts';
import { hostKinds, hostStates, roles } from './kinds.ts';
import { PRIORITY_DEFAULT, PRIORITY_MAX, PRIORITY_MIN } from './priority.ts';
import { AbsolutePath, Closed, StringEnum, StringMap } from './schema-kit.ts';
import { levels } from './topology.ts';

export { AbsolutePath, StringEnum, StringMap };

export const Name = Type.String({
  minLength: 1,
  maxLength: 63,
  pattern: '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$',
  description: 'lower-case letters, digits and dashes; starts and ends with a letter or digit',
});
export const Labels = StringMap('^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$', Type.String({ maxLength: 255 }), {
  maxProperties: 64,
  description:
    'key/value labels: keys of up to 63 letters, digits and ._/- (starting and ending alphanumeric), values of up to 255 characters; filter lists with ?labels=k=v,k2',
});
export const Timestamp = Type.String({ format: 'date-time' });
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      details: Type.Optional(Type.Unknown()),
    }),
  },
  { $id: 'Error' },
);

export const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    labels: Type.Optional(Type.String({ maxLength: 1000, description: 'selector: k=v,k!=v,k (all must match)' })),
  },
  Closed,
);
export type ListQuery = Static<typeof ListQuery>;
export const NoQuery = Type.Object({}, Closed);
/** For the creates and replaces that can be tried without being kept. */
export const DryRunQuery = Type.Object(
  {
    dryRun: Type.Optional(
      Type.Boolean({ description: 'check everything and answer what would be, changing nothing (200)' }),
    ),
  },
  Closed,
);
/** For lists of resources that carry no labels. */
export const PageQuery = Type.Object(
  { limit: ListQuery.properties.limit, cursor: ListQuery.properties.cursor },
  Closed,
);

export const Page = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), nextCursor: Nullable(Type.String()) });

// ---- projects -------------------------------------------------------------
export const Quota = Type.Object(
  {
    instances: Nullable(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    vcpus: Nullable(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
    memoryMib: Nullable(Type.Integer({ minimum: 0, maximum: 10_000_000_000 })),
    diskGib: Nullable(Type.Integer({ minimum: 0, maximum: 10_000_000_000 })),
  },
  { ...Closed, description: 'null means unlimited' },
);
export const QuotaPatch = Type.Partial(Quota, Closed);
export const Usage = Type.Object({
  instances: Type.Integer(),
  vcpus: Type.Integer(),
  memoryMib: Type.Integer(),
  diskGib: Type.Integer(),
});
const PlacementStrategy = StringEnum(['binpack', 'spread'], {
  description: "how the scheduler scores hosts for the project's instances: fill them up, or keep them even",
});
export const Project = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.String(),
  labels: Labels,
  quota: Quota,
  usage: Usage,
  placementStrategy: PlacementStrategy,
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export const ProjectCreate = Type.Object(
  {
    name: Name,
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    labels: Type.Optional(Labels),
    quota: Type.Optional(QuotaPatch),
    placementStrategy: Type.Optional(PlacementStrategy),
  },
  Closed,
);
export const ProjectPatch = Type.Object(
  {
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    labels: Type.Optional(Labels),
    quota: Type.Optional(QuotaPatch),
    placementStrategy: Type.Optional(PlacementStrategy),
  },
  Closed,
);
export const RoleSchema = StringEnum(roles);
export const Member = Type.Object({
  userId: Type.String(),
  userName: Type.String(),
  role: RoleSchema,
  createdAt: Timestamp,
});
export const MemberPut = Type.Object({ role: RoleSchema }, Closed);

// ---- users and tokens ---------------------------------------------------
export const User = Type.Object({
  id: Type.String(),
  name: Type.String(),
  clusterAdmin: Type.Boolean(),
  projects: Type.Array(Type.Object({ projectId: Type.String(), projectName: Type.String(), role: RoleSchema })),
  createdAt: Timestamp,
});
export const UserCreate = Type.Object(
  {
    name: Name,
    clusterAdmin: Type.Optional(Type.Boolean()),
    projects: Type.Optional(
      Type.Array(Type.Object({ project: Type.String({ minLength: 1, maxLength: 100 }), role: RoleSchema }, Closed), {
        maxItems: 100,
      }),
    ),
  },
  Closed,
);
export const Token = Type.Object({
  id: Type.String(),
  name: Type.String(),
  userId: Type.String(),
  createdAt: Timestamp,
  expiresAt: Nullable(Timestamp),
});
export const TokenCreated = Type.Object({
  id: Type.String(),
  name: Type.String(),
  userId: Type.String(),
  createdAt: Timestamp,
  expiresAt: Nullable(Timestamp),
  secret: Type.String({ description: 'shown once; only its hash is stored' }),
});
export const TokenCreate = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'cluster admins only: id or name' })),
    expiresInSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 10 * 365 * 86400 })),
  },
  Closed,
);
export const TokenListQuery = Type.Object(
  {
    limit: ListQuery.properties.limit,
    cursor: ListQuery.properties.cursor,
    user: Type.Optional(Type.String({ maxLength: 100 })),
  },
  Closed,
);
export const Whoami = Type.Object({
  kind: StringEnum(['user', 'agent']),
  id: Type.String(),
  name: Type.String(),
  clusterAdmin: Type.Boolean(),
  projects: Type.Array(Type.Object({ projectId: Type.String(), projectName: Type.String(), role: RoleSchema })),
});

// ---- hosts ------------------------------------------------------------------
export const Resources = Type.Object(
  {
    vcpus: Type.Integer({ minimum: 0, maximum: 100_000 }),
    memoryMib: Type.Integer({ minimum: 0, maximum: 1_000_000_000 }),
    diskGib: Type.Integer({ minimum: 0, maximum: 1_000_000_000 }),
  },
  Closed,
);
export const Topology = Type.Object(
  {
    region: Type.String({ maxLength: 63 }),
    zone: Type.String({ maxLength: 63 }),
    rack: Type.String({ maxLength: 63 }),
  },
  Closed,
);
export const DriverName = StringEnum(['container', 'vm', 'metal', 'sim']);
export const Host = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: StringEnum(hostKinds),
  parent: Nullable(Type.String({ description: 'the instance this host runs inside, for nested hosts' })),
  topology: Topology,
  labels: Labels,
  capacity: Resources,
  allocatable: Resources,
  drivers: Type.Array(DriverName),
  state: StringEnum(hostStates),
  pool: Nullable(Type.String({ description: 'project id the host is dedicated to; null for the shared pool' })),
  info: Type.Record(Type.String(), Type.Unknown()),
  lastHeartbeatAt: Nullable(Timestamp),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export const HostCreate = Type.Object(
  {
    name: Name,
    kind: Type.Optional(StringEnum(hostKinds)),
    parent: Type.Optional(Type.String({ maxLength: 100 })),
    topology: Type.Optional(Type.Partial(Topology, Closed)),
    labels: Type.Optional(Labels),
    capacity: Resources,
    allocatable: Type.Optional(Resources),
    drivers: Type.Optional(Type.Array(DriverName, { uniqueItems: true, maxItems: 4 })),
    pool: Type.Optional(Nullable(Type.String({ maxLength: 100 }))),
  },
  Closed,
);
export const HostPatch = Type.Object(
  {
    labels: Type.Optional(Labels),
    topology: Type.Optional(Type.Partial(Topology, Closed)),
    pool: Type.Optional(Nullable(Type.String({ maxLength: 100 }))),
    state: Type.Optional(StringEnum(['ready', 'draining'], { description: 'drain or return a host to service' })),
  },
  Closed,
);

/** A placement group: its rule holds for its members at its level of the topology. */
export const PlacementGroup = Type.Object({
  id: Type.String(),
  project: Type.String(),
  name: Type.String(),
  policy: StringEnum(['affinity', 'anti-affinity', 'spread']),
  strength: StringEnum(['hard', 'soft']),
  level: StringEnum(levels),
  maxSkew: Type.Integer(),
  members: Type.Integer({ description: 'instances in the group' }),
  createdAt: Timestamp,
});

/** A project's secret: its name only, never its value. */
export const Secret = Type.Object({
  id: Type.String(),
  project: Type.String(),
  name: Type.String(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

export const JoinToken = Type.Object({
  id: Type.String(),
  description: Type.String(),
  pool: Nullable(Type.String()),
  createdAt: Timestamp,
  expiresAt: Nullable(Timestamp),
});
export const JoinTokenCreated = Type.Object({
  id: Type.String(),
  description: Type.String(),
  pool: Nullable(Type.String()),
  createdAt: Timestamp,
  expiresAt: Nullable(Timestamp),
  secret: Type.String(),
});
export const JoinTokenCreate = Type.Object(
  {
    description: Type.Optional(Type.String({ maxLength: 200 })),
    pool: Type.Optional(
      Type.String({ maxLength: 100, description: 'hosts that join with it are dedicated to this project' }),
    ),
    expiresInSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 10 * 365 * 86400 })),
  },
  Closed,
);

// ---- instances --------------------------------------------------------------
export const Constraint = Type.Object(
  {
    key: Type.String({
      minLength: 1,
      maxLength: 63,
      description: 'a host label, or topology.zone / topology.rack / topology.region',
    }),
    op: StringEnum(['==', '!=', 'exists', 'not-exists']),
    value: Type.Optional(Type.String({ maxLength: 255 })),
  },
  Closed,
);
export const InstanceResources = Type.Object(
  {
    vcpus: Type.Integer({ minimum: 1, maximum: 1024 }),
    memoryMib: Type.Integer({ minimum: 4, maximum: 16 * 1024 * 1024 }),
    diskGib: Type.Integer({ minimum: 0, maximum: 1024 * 1024 }),
  },
  Closed,
);
const envName = '^[A-Za-z_][A-Za-z0-9_]{0,254}$';
/** An environment with every value known: what an agent is given. */
export const Env = StringMap(envName, Type.String({ maxLength: 32768 }), {
  maxProperties: 256,
  description:
    'environment variables: names of letters, digits and _ (not starting with a digit), up to 255 characters',
});
export const SecretRef = Type.Object(
  {
    secret: Type.String({
      minLength: 1,
      maxLength: 63,
      pattern: '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$',
      description: "the name of a secret of the instance's project",
    }),
  },
  { additionalProperties: false },
);
/** An environment as users write and read it: plain values, or references to the project's secrets. */
export const EnvSpec = StringMap(envName, Type.Union([Type.String({ maxLength: 32768 }), SecretRef]), {
  maxProperties: 256,
  description:
    'environment variables: a plain value, or {"secret": NAME} for a secret of the project, given to the instance only and never shown',
});
export const RestartPolicy = Type.Object(
  {
    policy: StringEnum(['never', 'on-failure', 'always'], {
      description: 'restart after an exit: never, after a non-zero exit, or always',
    }),
    maxRetries: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'on-failure only; default 5' })),
  },
  Closed,
);
const Argv = Type.Array(Type.String({ maxLength: 8192 }), {
  maxItems: 256,
  description: 'at most 256 words of up to 8 KiB; a whole instance spec takes at most 128 KiB',
});
export const HealthCheck = Type.Object(
  {
    type: StringEnum(healthCheckTypes, {
      description: 'run a command in the instance, GET a URL, or open a TCP connection',
    }),
    command: Type.Optional(
      Type.Array(Type.String({ maxLength: 4096 }), {
        minItems: 1,
        maxItems: 256,
        description: 'exec: healthy when it exits 0',
      }),
    ),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: "http, tcp: the instance's port" })),
    path: Type.Optional(
      Type.String({ maxLength: 2048, pattern: '^/', description: 'http: healthy on a 2xx or 3xx answer; default /' }),
    ),
    intervalSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600, default: 10 })),
    timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600, default: 5 })),
    retries: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100, default: 3, description: 'failures in a row that make it unhealthy' }),
    ),
    startPeriodSeconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 3600,
        default: 0,
        description: 'failures in this time after start do not count',
      }),
    ),
  },
  Closed,
);
export const Health = Type.Object(
  {
    status: StringEnum(['starting', 'healthy', 'unhealthy']),
    failingStreak: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    changedAt: Nullable(Timestamp),
    output: Type.String({ maxLength: 4096, description: 'what the check that changed the health said (trimmed)' }),
  },
  Closed,
);
export const PortBinding = Type.Object(
  {
    containerPort: Type.Integer({ minimum: 1, maximum: 65535 }),
    protocol: StringEnum(['tcp', 'udp', 'sctp']),
    hostIp: Type.String({ maxLength: 64 }),
    hostPort: Type.Integer({ minimum: 0, maximum: 65535 }),
  },
  Closed,
);
export const Observed = Type.Object({
  address: Nullable(Type.String({ description: "the instance's address on its host's network" })),
  ports: Type.Array(PortBinding),
  health: Nullable(Health),
  accelerator: Nullable(Type.String({ description: 'VMs: kvm, or tcg (emulation) where KVM cannot run guests' })),
});
/**
 * An instance's presented fields that every kind has, in two parts:
 * src/kinds/schemas.ts names the registered kinds in `kind` and puts each
 * kind's own fields between the parts.
 */
export const instanceFields = {
  id: Type.String(),
  project: Type.String(),
  name: Type.String(),
  kind: Type.String(),
  image: Type.String(),
  command: Argv,
  args: Argv,
  env: EnvSpec,
  resources: InstanceResources,
  pidsLimit: Type.Integer({ description: 'most processes the instance may run at once' }),
  stopGraceSeconds: Type.Integer({ description: 'on stop: time between the polite signal and the kill' }),
  restartRequestedAt: Nullable(Timestamp),
  stopGraceOverride: Nullable(
    Type.Integer({ description: 'the grace period the pending stop request asked for (0: at once)' }),
  ),
  workingDir: Type.String(),
  healthCheck: Nullable(HealthCheck),
};
export const instanceStatusFields = {
  groups: Type.Array(Type.String(), { description: 'placement group ids' }),
  labels: Labels,
  constraints: Type.Array(Constraint),
  priority: Type.Integer({ description: 'placement order while waiting: higher first, then older first' }),
  waitForCapacity: Type.Boolean({
    description: 'when no host can take it: wait in pending (true) or fail at once (false)',
  }),
  restartPolicy: RestartPolicy,
  restarts: Type.Integer({ description: 'automatic restarts so far' }),
  observed: Observed,
  host: Nullable(Type.String()),
  node: Nullable(Type.String({ description: 'metal: the node the instance is deployed on (host is its conductor)' })),
  desiredState: StringEnum(desiredStates),
  state: StringEnum(instanceStates),
  message: Type.String(),
  exitCode: Nullable(Type.Integer()),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  startedAt: Nullable(Timestamp),
  finishedAt: Nullable(Timestamp),
};
/** The spec fields every kind has; each kind adds its own (src/kinds/schemas.ts puts them together). */
export const sharedSpec = {
  project: Type.String({ minLength: 1, maxLength: 100, description: 'project id or name' }),
  name: Type.Optional(Name),
  image: Type.String({
    minLength: 1,
    maxLength: DISK_URL_MAX_LENGTH,
    pattern: `${IMAGE_REF_PATTERN}|${DISK_URL_PATTERN}`,
    description:
      "an OCI image reference ([registry[:port]/]path[:tag][@digest]); for VMs also the name of a disk image in the host's image store; for metal also the http(s) URL of a raw or qcow2 disk image",
  }),
  command: Type.Optional(Argv),
  args: Type.Optional(Argv),
  env: Type.Optional(EnvSpec),
  resources: Type.Optional(Type.Partial(InstanceResources, Closed)),
  pidsLimit: Type.Optional(Type.Integer({ minimum: 8, maximum: 4_194_304, default: 4096 })),
  stopGraceSeconds: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: 3600,
      default: 10,
      description: 'on stop: seconds between SIGTERM and SIGKILL',
    }),
  ),
  workingDir: Type.Optional(Type.Union([AbsolutePath, Type.Literal('')], { description: "default: the image's" })),
  healthCheck: Type.Optional(HealthCheck),
  groups: Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 100 }), {
      maxItems: 8,
      uniqueItems: true,
      description: 'placement groups (names or ids in the project) whose rules the placement keeps',
    }),
  ),
  labels: Type.Optional(Labels),
  constraints: Type.Optional(Type.Array(Constraint, { maxItems: 32 })),
  priority: Type.Optional(
    Type.Integer({
      minimum: PRIORITY_MIN,
      maximum: PRIORITY_MAX,
      default: PRIORITY_DEFAULT,
      description: `${PRIORITY_MIN}..${PRIORITY_MAX}: instances waiting for capacity are placed higher first, then older first`,
    }),
  ),
  waitForCapacity: Type.Optional(
    Type.Boolean({
      default: true,
      description:
        'when no host can take it: wait in pending, saying why, until one can (true), or fail at once (false)',
    }),
  ),
  restartPolicy: Type.Optional(RestartPolicy),
  desiredState: Type.Optional(StringEnum(['running', 'stopped'])),
};

export const InstanceListQuery = Type.Object(
  {
    limit: ListQuery.properties.limit,
    cursor: ListQuery.properties.cursor,
    labels: ListQuery.properties.labels,
    project: Type.Optional(Type.String({ maxLength: 100 })),
    name: Type.Optional(Type.String({ maxLength: 100 })),
    state: Type.Optional(StringEnum(instanceStates)),
    host: Type.Optional(Type.String({ maxLength: 100 })),
  },
  Closed,
);

// ---- events -----------------------------------------------------------------
export const Event = Type.Object({
  seq: Type.Integer(),
  at: Timestamp,
  type: Type.String(),
  project: Nullable(Type.String()),
  resourceType: Type.String(),
  resourceId: Type.String(),
  actor: Type.String(),
  data: Type.Record(Type.String(), Type.Unknown()),
});
export const EventQuery = Type.Object(
  {
    project: Type.Optional(Type.String({ maxLength: 100 })),
    resource: Type.Optional(Type.String({ maxLength: 100, description: 'only events of this resource id' })),
    since: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: Number.MAX_SAFE_INTEGER,
        description: 'only events after this sequence number',
      }),
    ),
    limit: ListQuery.properties.limit,
    follow: Type.Optional(Type.Boolean({ description: 'stream as server-sent events' })),
  },
  Closed,
);

export const IdParam = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) }, Closed);
export const ProjectParam = Type.Object({ project: Type.String({ minLength: 1, maxLength: 100 }) }, Closed);
export const MemberParam = Type.Object(
  { project: Type.String({ minLength: 1, maxLength: 100 }), user: Type.String({ minLength: 1, maxLength: 100 }) },
  Closed,
);

export type ProjectCreate = Static<typeof ProjectCreate>;
export type HostCreate = Static<typeof HostCreate>;
export type ProjectOut = Static<typeof Project>;
export type HostOut = Static<typeof Host>;
export type EventOut = Static<typeof Event>;
export type UserOut = Static<typeof User>;
export type Constraint = Static<typeof Constraint>;
export type RestartPolicy = Static<typeof RestartPolicy>;
export type HealthCheck = Static<typeof HealthCheck>;
export type ObservedOut = Static<typeof Observed>;
export type HealthOut = Static<typeof Health>;
export type DriverName = Static<typeof DriverName>;
