// Bare-metal nodes: servers enrolled with their BMC, moved through Ironic's
// provisioning states (docs/metal.md) by their conductor, and offered to the
// scheduler while `available`.
import { Type, type Static } from 'typebox';
import { Closed, StringEnum } from './schema-kit.ts';
import { Labels, Name, Resources, Timestamp } from './schemas.ts';

/** Steps a conductor works on; each has a timeout and a named error state. */
export const nodeSteps = ['verifying', 'inspecting', 'cleaning', 'deploying', 'undeploying'] as const;
export type NodeStep = (typeof nodeSteps)[number];

export const provisionStates = [
  'enroll',
  'manageable',
  'available',
  'active',
  ...nodeSteps,
  'verify failed',
  'inspect failed',
  'clean failed',
  'deploy failed',
] as const;
export type ProvisionState = (typeof provisionStates)[number];

/** The error state a step lands in when it fails (undeploy fails as a clean would: the node is not reusable yet). */
export const failedState: Record<NodeStep, ProvisionState> = {
  verifying: 'verify failed',
  inspecting: 'inspect failed',
  cleaning: 'clean failed',
  deploying: 'deploy failed',
  undeploying: 'clean failed',
};

export const isStep = (s: string): s is NodeStep => (nodeSteps as readonly string[]).includes(s);

/** What a user asks of a node (`strata node manage|inspect|clean|provide`). */
export const provisionActions = ['manage', 'inspect', 'clean', 'provide'] as const;
export type ProvisionAction = (typeof provisionActions)[number];

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const Hardware = Type.Object(
  {
    cpus: Type.Integer({ minimum: 1, maximum: 100_000 }),
    memoryMib: Type.Integer({ minimum: 1, maximum: 1_000_000_000 }),
    disks: Type.Array(
      Type.Object(
        {
          name: Type.String({ maxLength: 64, pattern: '^[A-Za-z0-9._-]+$' }),
          sizeBytes: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
        },
        Closed,
      ),
      { maxItems: 64 },
    ),
    nics: Type.Array(
      Type.Object(
        {
          name: Type.String({ maxLength: 64, pattern: '^[A-Za-z0-9._@-]+$' }),
          mac: Type.String({ pattern: '^([0-9a-f]{2}:){5}[0-9a-f]{2}$' }),
        },
        Closed,
      ),
      { maxItems: 64 },
    ),
  },
  Closed,
);

export type HardwareOut = Static<typeof Hardware>;

export const Node = Type.Object({
  id: Type.String(),
  name: Type.String(),
  bmc: Type.Object({
    protocol: StringEnum(['ipmi', 'redfish']),
    address: Type.String({ description: 'the BMC URL without its password' }),
  }),
  provisionState: StringEnum(provisionStates),
  targetState: Nullable(StringEnum(provisionStates)),
  lastError: Type.String({ description: 'why the last step failed; empty when it did not' }),
  maintenance: Type.Boolean(),
  maintenanceReason: Type.String(),
  conductor: Type.String({ description: 'the host whose agent drives this node' }),
  topology: Type.Object({ region: Type.String(), zone: Type.String(), rack: Type.String() }),
  labels: Labels,
  capacity: Resources,
  hardware: Nullable(Hardware),
  instance: Nullable(Type.String({ description: 'the metal instance deployed on the node' })),
  stepStartedAt: Nullable(Timestamp),
  stepDeadlineAt: Nullable(Timestamp),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export type NodeOut = Static<typeof Node>;

export const NodeEnroll = Type.Object(
  {
    name: Name,
    bmc: Type.String({
      minLength: 1,
      maxLength: 512,
      description: 'ipmi://USER:PASS@HOST[:PORT], redfish://USER:PASS@HOST[:PORT] (https) or redfish+http://...',
    }),
    topology: Type.Optional(
      Type.Object(
        {
          region: Type.Optional(Type.String({ maxLength: 63 })),
          zone: Type.Optional(Type.String({ maxLength: 63 })),
          rack: Type.Optional(Type.String({ maxLength: 63 })),
        },
        Closed,
      ),
    ),
    labels: Type.Optional(Labels),
    conductor: Type.Optional(
      Type.String({ maxLength: 100, description: 'the host (name or id) whose agent drives the node' }),
    ),
  },
  Closed,
);
export type NodeEnroll = Static<typeof NodeEnroll>;

export const NodeProvision = Type.Object({ action: StringEnum(provisionActions) }, Closed);
export const NodeMaintenance = Type.Object(
  { on: Type.Boolean(), reason: Type.Optional(Type.String({ maxLength: 1024 })) },
  Closed,
);

/** A node as its conductor reads it: with the BMC's credentials, which leave the server only this way. */
export const ConductedNode = Type.Object({
  id: Type.String(),
  name: Type.String(),
  bmcUrl: Type.String(),
  provisionState: StringEnum(provisionStates),
  targetState: Nullable(StringEnum(provisionStates)),
  maintenance: Type.Boolean(),
  macs: Type.Array(Type.String()),
  instance: Nullable(Type.String()),
  stepStartedAt: Nullable(Timestamp),
  stepDeadlineAt: Nullable(Timestamp),
});
export type ConductedNode = Static<typeof ConductedNode>;

export const ConductedNodes = Type.Object({
  version: Type.String(),
  nodes: Type.Array(ConductedNode),
});

/** A conductor's word on the step it worked on: applied only while the node is still in that step. */
export const StepReport = Type.Object(
  {
    step: StringEnum(nodeSteps),
    stepStartedAt: Timestamp,
    ok: Type.Boolean(),
    message: Type.Optional(Type.String({ maxLength: 4096 })),
    hardware: Type.Optional(Hardware),
  },
  Closed,
);
export type StepReport = Static<typeof StepReport>;
