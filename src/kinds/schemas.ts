// The API's instance schemas, which take each kind's fields from the registry:
// a new instance's spec (one schema per kind), an instance as presented, and
// an agent's assignments. They live here, above src/model/, so that the wire
// types below the kinds never import them. Importing this module loads
// TypeBox and every kind's fields (once, at its start): the server and the
// agent do; the CLI takes only its types.
import { type Static, Type } from 'typebox';
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
