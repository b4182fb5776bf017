// The API's instance schemas, which take each kind's fields from the registry:
// a new instance's spec (one schema per kind), an instance as presented, and
// an agent's assignments. They live here, above src/model/, so that the wire
// types below the kinds never import them. Importing this module loads
// TypeBox and every kind's fields (once, at its start): the server and the
// agent do; the CLI takes only its types.
import { type Static, Type } from 'typebox';
import { deploymentSchemas } from '../model/deployments.ts';
import { Closed, StringEnum } from '../model/schema-kit.ts';
import { Env, instanceFields, instanceStatusFields, sharedSpec } from '../model/schemas.ts';
import { type Kind, type KindOutputFields, type KindSpecFields, kindNames, kinds, loadKindFields } from './index.ts';
import type { SpecOf } from './kind.ts';

/** Each kind's spec and output fields, by kind name. */
export const kindFields = await loadKindFields();
const kindOutputFields = Object.assign({}, ...[...kindFields.values()].map(f => f.output)) as KindOutputFields;

export const Instance = Type.Object({
  ...instanceFields,
  kind: StringEnum(kindNames),
  // Every kind's fields: an instance of another kind shows their defaults.
  ...kindOutputFields,
  ...instanceStatusFields,
});
export type InstanceOut = Static<typeof Instance>;

/** The spec of one kind: the shared fields, `kind` naming it, and its own fields. */
export const kindSpec = (k: Kind) =>
  Type.Object(
    { kind: StringEnum([k.name], { description: k.description }), ...sharedSpec, ...kindFields.get(k.name)?.spec },
    { ...Closed, title: `${k.name} spec` },
  );

// A deployment names its replicas, puts them in its project, keeps them
// running and gives them its own priority.
const { project: _project, name: _name, desiredState: _desired, priority: _priority, ...templateShared } = sharedSpec;

/** A deployment's template of one kind: its spec without project, name, desiredState and priority. */
export const templateSpec = (k: Kind) =>
  Type.Object(
    { kind: StringEnum([k.name], { description: k.description }), ...templateShared, ...kindFields.get(k.name)?.spec },
    { ...Closed, title: `${k.name} template` },
  );

const SharedSpec = Type.Object({ kind: Type.String(), ...sharedSpec });
/** A spec as the server reads it: the shared fields, and those of its kind. */
export type InstanceCreate = Static<typeof SharedSpec> & Partial<SpecOf<KindSpecFields>>;

/**
 * A new instance's spec: one schema per kind, told apart by `kind`. Requests
 * are checked against the schema of their kind only (src/api/instance-spec.ts),
 * so an error names the field at fault rather than every kind's.
 */
export const InstanceCreate = Type.Unsafe<InstanceCreate>({
  oneOf: kinds.map(kindSpec),
  discriminator: { propertyName: 'kind' },
  description: `the shared fields, and those of its kind: ${kindNames.join(', ')}`,
});

/** What every replica of a deployment is made of: an instance spec without project, name, desiredState and priority. */
export type InstanceTemplate = Omit<InstanceCreate, 'project' | 'name' | 'desiredState' | 'priority'>;

export const InstanceTemplate = Type.Unsafe<InstanceTemplate>({
  oneOf: kinds.map(templateSpec),
  discriminator: { propertyName: 'kind' },
  description: `an instance spec without project, name, desiredState and priority: the shared fields, and those of its kind (${kindNames.join(', ')})`,
});

export const { DeploymentCreate, DeploymentSpec, Deployment, DeploymentDetail, Revision } = deploymentSchemas(
  InstanceTemplate,
  Type.Unsafe<InstanceTemplate>({
    type: 'object',
    additionalProperties: true,
    description: 'the instance spec of every replica, as given, defaults filled in',
  }),
);
export type DeploymentCreate = Static<typeof DeploymentCreate>;
export type DeploymentSpec = Static<typeof DeploymentSpec>;
export type DeploymentOut = Static<typeof Deployment>;
export type DeploymentDetailOut = Static<typeof DeploymentDetail>;
export type RevisionOut = Static<typeof Revision>;

/** An instance as its host's agent is given it: as presented, with its environment's secrets resolved. */
export const Assignment = Type.Object({
  ...Instance.properties,
  env: Env,
});
export const Assignments = Type.Object({
  version: Type.String(),
  instances: Type.Array(Assignment),
});
export type Assignments = Static<typeof Assignments>;
