// The agent protocol's messages. See docs/agent-protocol.md.
import { Type, type Static } from 'typebox';
import { instanceStates } from './instance-state.ts';
import { hostKinds } from './kinds.ts';
import {
  DriverName,
  Env,
  Health,
  Host,
  instanceFields,
  instanceStatusFields,
  Labels,
  Name,
  PortBinding,
  Resources,
  StringEnum,
  StringMap,
  Topology,
} from './schemas.ts';

const Closed = { additionalProperties: false } as const;

export const Fingerprint = Type.Object(
  {
    kind: Type.Optional(StringEnum(hostKinds)),
    parent: Type.Optional(Type.String({ maxLength: 100, description: 'instance id this host runs inside' })),
    topology: Type.Optional(Type.Partial(Topology, Closed)),
    labels: Type.Optional(Labels),
    capacity: Resources,
    allocatable: Type.Optional(Resources),
    drivers: Type.Array(DriverName, { uniqueItems: true, maxItems: 4 }),
    info: Type.Optional(
      StringMap(
        '^[A-Za-z0-9_.-]{1,63}$',
        Type.Union([
          Type.String({ maxLength: 1024 }),
          Type.Number({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER }),
          Type.Boolean(),
        ]),
        { maxProperties: 64 },
      ),
    ),
  },
  Closed,
);

export const Register = Type.Object(
  {
    joinToken: Type.String({ minLength: 1, maxLength: 200 }),
    name: Name,
    fingerprint: Fingerprint,
  },
  Closed,
);
export const Registered = Type.Object({
  host: Host,
  token: Type.String({ description: "the agent's credential; keep it, present it as a Bearer token" }),
  heartbeatSeconds: Type.Integer(),
});

export const Heartbeat = Type.Object({ fingerprint: Type.Optional(Fingerprint) }, Closed);
export const HeartbeatAck = Type.Object({ host: Host, heartbeatSeconds: Type.Integer() });

export const AssignmentQuery = Type.Object(
  {
    version: Type.Optional(
      Type.String({ maxLength: 64, description: 'the version of the last answer; the call waits until it changes' }),
    ),
    waitSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 300, default: 30 })),
  },
  Closed,
);
/**
 * What every kind's assignment holds: an instance as presented, with its
 * environment's secrets resolved. The full schema, with each kind's fields,
 * is src/kinds/schemas.ts's; a driver reads its own kind's fields beside these.
 */
export const SharedAssignment = Type.Object({
  ...instanceFields,
  ...instanceStatusFields,
  env: Env,
});
export type SharedAssignment = Static<typeof SharedAssignment>;

const observedFields = {
  address: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Null()])),
  ports: Type.Optional(Type.Array(PortBinding, { maxItems: 256 })),
  accelerator: Type.Optional(Type.Union([Type.String({ maxLength: 16 }), Type.Null()])),
};

export const StatusReportBody = Type.Object(
  {
    state: StringEnum(instanceStates),
    message: Type.Optional(Type.String({ maxLength: 4096 })),
    exitCode: Type.Optional(Type.Union([Type.Integer({ minimum: -1, maximum: 255 }), Type.Null()])),
    restart: Type.Optional(
      Type.Boolean({ description: 'true when the agent restarts the instance by its restart policy' }),
    ),
    observed: Type.Optional(
      Type.Object(observedFields, {
        ...Closed,
        description:
          'what the agent saw as the instance started (address, ports, accelerator), recorded with the state in one write',
      }),
    ),
  },
  Closed,
);

export const ObservedReport = Type.Object(
  {
    ...observedFields,
    health: Type.Optional(Type.Union([Health, Type.Null()])),
  },
  Closed,
);

export type Fingerprint = Static<typeof Fingerprint>;
export type Registered = Static<typeof Registered>;
