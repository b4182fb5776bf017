// Deployments: N replicas of one instance template, kept running and replaced
// revision by revision. This module holds the wire schemas that do not depend
// on the registered kinds (strategy, status, revisions) and the pure rules the
// server, the controller and the CLI share (percentages, the strategy's
// checks). src/kinds/schemas.ts puts the kinds' template union into the
// schemas built by `deploymentSchemas`.
import { PRIORITY_DEFAULT, PRIORITY_MAX, PRIORITY_MIN } from './priority.ts';
import { type Static, type TSchema, Type } from 'typebox';
import { Closed, StringEnum } from './schema-kit.ts';
import { Labels } from './schemas.ts';

/** The most replicas one deployment may ask for. */
export const MAX_REPLICAS = 1000;
/**
 * A deployment's name is at most this long, so that its replicas' names
 * (NAME-SLOT-HASH, with a suffix when a name is still taken) stay DNS labels.
 */
export const DEPLOYMENT_NAME_MAX = 40;

export const DeploymentName = Type.String({
  minLength: 1,
  maxLength: DEPLOYMENT_NAME_MAX,
  pattern: '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$',
  description: `a DNS label of at most ${DEPLOYMENT_NAME_MAX} characters (lower-case letters, digits and dashes), so that its replicas' names (NAME-SLOT-HASH) stay DNS labels`,
});

/** How important a deployment's replicas are to the scheduler: higher goes first. */
export const Priority = Type.Integer({
  minimum: PRIORITY_MIN,
  maximum: PRIORITY_MAX,
  description: `the replicas' scheduling priority (${PRIORITY_MIN} to ${PRIORITY_MAX}, default ${PRIORITY_DEFAULT}); higher is placed first`,
});

const PERCENT = '^(100|[1-9]?[0-9])%$';

/** A count, or a percentage of the replicas (Kubernetes' IntOrString). */
const IntOrPercent = (description: string) =>
  Type.Union(
    [
      Type.Integer({ minimum: 0, maximum: MAX_REPLICAS }),
      Type.String({ pattern: PERCENT, maxLength: 4, description: 'a percentage of the replicas, e.g. "25%"' }),
    ],
    { description },
  );
export type IntOrPercent = number | string;

export const Strategy = Type.Object(
  {
    maxSurge: Type.Optional(
      IntOrPercent(
        'replicas of the new revision created beyond `replicas` during a rollout (a percentage rounds up; default "25%")',
      ),
    ),
    maxUnavailable: Type.Optional(
      IntOrPercent(
        'replicas that may be unavailable during a rollout (a percentage rounds down; default "25%"); never 0 together with maxSurge',
      ),
    ),
    minHealthySeconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 3600,
        description: 'a new replica counts as available once ready for this long (default 0)',
      }),
    ),
    progressDeadlineSeconds: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 86_400,
        description:
          'a rollout whose new revision is not fully available this long after it began has failed (default 600)',
      }),
    ),
    canary: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_REPLICAS,
        description: 'replicas of a new revision started first, before the rest roll out (default 0: none)',
      }),
    ),
    canaryPromotion: Type.Optional(
      StringEnum(['manual', 'auto'], {
        description: 'after the canaries are healthy: wait for a promotion (manual, the default), or go on (auto)',
      }),
    ),
    autoRollback: Type.Optional(
      Type.Boolean({
        description: 'go back to the previous revision when a new one misses its progress deadline (default false)',
      }),
    ),
    lostGraceSeconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 86_400,
        description:
          'a replica whose host has not been heard from for this long is replaced on another host (default 60); the old one is stopped when its host comes back',
      }),
    ),
  },
  { ...Closed, description: 'how a changed template replaces the replicas' },
);
export type StrategySpec = Static<typeof Strategy>;
export type StrategyOut = Required<StrategySpec>;

export const defaultStrategy: StrategyOut = {
  maxSurge: '25%',
  maxUnavailable: '25%',
  minHealthySeconds: 0,
  progressDeadlineSeconds: 600,
  canary: 0,
  canaryPromotion: 'manual',
  autoRollback: false,
  lostGraceSeconds: 60,
};

/** A strategy with every field given: what is stored and hashed. */
export const fullStrategy = (s: StrategySpec | undefined): StrategyOut => ({ ...defaultStrategy, ...s });

const isZero = (v: IntOrPercent): boolean => v === 0 || v === '0%';

/** Problems of a strategy the schema cannot see, with their fields (`body.strategy...`). */
export function strategyProblems(s: StrategyOut): { field: string; message: string }[] {
  const problems: { field: string; message: string }[] = [];
  if (isZero(s.maxSurge) && isZero(s.maxUnavailable))
    problems.push({
      field: 'body.strategy',
      message:
        'maxSurge and maxUnavailable cannot both be 0: a rollout could neither add a new replica nor take an old one away',
    });
  if (s.progressDeadlineSeconds <= s.minHealthySeconds)
    problems.push({
      field: 'body.strategy.progressDeadlineSeconds',
      message: `(${s.progressDeadlineSeconds}) must be more than minHealthySeconds (${s.minHealthySeconds}): no new replica could become available in time`,
    });
  return problems;
}

/**
 * maxSurge and maxUnavailable as counts for `replicas`, as Kubernetes reads
 * them: a surge percentage rounds up, an unavailable one down, and when both
 * come to 0 one replica may be unavailable, so that a rollout can move.
 */
export function resolveStrategy(
  s: Pick<StrategyOut, 'maxSurge' | 'maxUnavailable'>,
  replicas: number,
): { maxSurge: number; maxUnavailable: number } {
  const count = (v: IntOrPercent, round: (n: number) => number) =>
    typeof v === 'number' ? v : round((replicas * Number.parseInt(v, 10)) / 100);
  const maxSurge = count(s.maxSurge, Math.ceil);
  let maxUnavailable = Math.min(count(s.maxUnavailable, Math.floor), replicas);
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = Math.min(1, replicas);
  return { maxSurge, maxUnavailable };
}

export const rolloutPhases = ['progressing', 'complete', 'paused', 'degraded', 'failed', 'awaiting-promotion'] as const;
export type RolloutPhase = (typeof rolloutPhases)[number];

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Timestamp = Type.String({ format: 'date-time' });

/** A replica slot waiting to be filled again after its replica failed. */
export const SlotBackoff = Type.Object({
  slot: Type.Integer(),
  failures: Type.Integer({ description: 'failures in a row of the replicas of this slot' }),
  retryAt: Nullable(Timestamp),
  reason: Type.String({ description: 'what ended the last replica that failed' }),
});

export const DeploymentStatus = Type.Object({
  observedGeneration: Type.Integer({ description: 'the generation the controller last acted on' }),
  replicas: Type.Integer({ description: 'live replicas, of any revision' }),
  updatedReplicas: Type.Integer({ description: 'live replicas of the current revision' }),
  readyReplicas: Type.Integer({ description: 'replicas running and, with a health check, healthy' }),
  availableReplicas: Type.Integer({ description: 'replicas ready for at least minHealthySeconds' }),
  phase: StringEnum(rolloutPhases),
  message: Type.String(),
  replacements: Type.Integer({ description: 'replicas replaced after they failed or were lost' }),
  backoff: Type.Array(SlotBackoff, { description: 'slots whose replicas failed, and when each is filled again' }),
  rolledBackFrom: Nullable(
    Type.Integer({
      description: 'the revision whose missed progress deadline made the current one by an automatic rollback',
    }),
  ),
});
export type DeploymentStatusOut = Static<typeof DeploymentStatus>;

/** A replica as a deployment's detail shows it. */
export const DeploymentReplica = Type.Object({
  id: Type.String(),
  name: Type.String(),
  slot: Type.Integer(),
  revision: Type.Integer(),
  state: Type.String(),
  desiredState: Type.String(),
  ready: Type.Boolean(),
  host: Nullable(Type.String()),
  message: Type.String(),
  createdAt: Timestamp,
});
export type DeploymentReplicaOut = Static<typeof DeploymentReplica>;

export const DeploymentListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    labels: Type.Optional(Type.String({ maxLength: 1000, description: 'selector: k=v,k!=v,k (all must match)' })),
    project: Type.Optional(Type.String({ maxLength: 100 })),
    name: Type.Optional(Type.String({ maxLength: 100 })),
  },
  Closed,
);

export const DeploymentRollback = Type.Object(
  {
    toRevision: Type.Optional(
      Type.Integer({ minimum: 1, description: 'the revision whose template comes back (default: the one before)' }),
    ),
  },
  { ...Closed, description: 'go back to an earlier revision: a new revision copies its template' },
);

export const DeploymentScale = Type.Object(
  { replicas: Type.Integer({ minimum: 0, maximum: MAX_REPLICAS }) },
  { ...Closed, description: 'a new replica count; the template is unchanged' },
);

/**
 * The schemas of the /v1/deployments routes around a template schema (the
 * union of the kinds' instance specs without project and name) and the
 * template as presented.
 */
export function deploymentSchemas<T extends TSchema, O extends TSchema>(template: T, templateOut: O) {
  const specFields = {
    labels: Type.Optional(Labels),
    template,
    replicas: Type.Integer({ minimum: 0, maximum: MAX_REPLICAS, description: 'how many replicas to keep running' }),
    priority: Type.Optional(Priority),
    strategy: Type.Optional(Strategy),
    paused: Type.Optional(
      Type.Boolean({ description: 'a paused deployment scales and replaces failed replicas but rolls nothing out' }),
    ),
  };
  const DeploymentCreate = Type.Object(
    {
      project: Type.String({ minLength: 1, maxLength: 100, description: 'project id or name' }),
      name: DeploymentName,
      ...specFields,
    },
    { ...Closed, title: 'deployment' },
  );
  const DeploymentSpec = Type.Object(specFields, {
    ...Closed,
    title: 'deployment spec',
    description: "the whole spec (a field left out takes its default); project and name don't change",
  });
  const deploymentFields = {
    id: Type.String(),
    project: Type.String(),
    name: Type.String(),
    labels: Labels,
    template: templateOut,
    replicas: Type.Integer(),
    priority: Type.Integer(),
    strategy: Type.Object({
      maxSurge: Type.Union([Type.Integer(), Type.String()]),
      maxUnavailable: Type.Union([Type.Integer(), Type.String()]),
      minHealthySeconds: Type.Integer(),
      progressDeadlineSeconds: Type.Integer(),
      canary: Type.Integer(),
      canaryPromotion: StringEnum(['manual', 'auto']),
      autoRollback: Type.Boolean(),
      lostGraceSeconds: Type.Integer(),
    }),
    paused: Type.Boolean(),
    revision: Type.Integer({ description: "the current revision: the template's latest change" }),
    generation: Type.Integer({ description: 'counts the changes of the spec' }),
    status: DeploymentStatus,
    createdAt: Timestamp,
    updatedAt: Timestamp,
  };
  const Deployment = Type.Object(deploymentFields);
  const DeploymentDetail = Type.Object({
    ...deploymentFields,
    instances: Type.Array(DeploymentReplica, { description: 'its replicas, by slot' }),
  });
  const Revision = Type.Object({
    revision: Type.Integer(),
    hash: Type.String({ description: "the template's hash; replicas' names carry its first characters" }),
    template: templateOut,
    priority: Type.Integer(),
    createdAt: Timestamp,
    completedAt: Nullable(Timestamp),
    promotedAt: Nullable(Timestamp),
    copiedFrom: Nullable(Type.Integer({ description: 'made by a rollback: the revision whose template it copies' })),
    rolledBackFrom: Nullable(
      Type.Integer({ description: 'made by an automatic rollback: the revision that missed its deadline' }),
    ),
  });
  return { DeploymentCreate, DeploymentSpec, Deployment, DeploymentDetail, Revision };
}
