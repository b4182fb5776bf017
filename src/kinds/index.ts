// The kinds of instance Strata runs, registered in one place. The server, the
// API, the CLI and the agent read them here and never branch on a kind's name.
// This module must stay cheap to import (the CLI loads it): small modules only.
// A kind's TypeBox fields load when asked for (src/kinds/schemas.ts does), and
// its driver code when its factory is called.
import type { Driver } from '../drivers/driver.ts';
import { sameCapabilities } from '../model/capabilities.ts';
import { container } from './container/index.ts';
import type { DriverSettings, Kind, KindFields, Problem, SpecOf } from './kind.ts';
import { metal } from './metal/index.ts';
import { vm } from './vm/index.ts';

/** Every kind, in the order help texts list them. A new kind: its folder, and one line here. */
const registered = [container, vm, metal] as const;

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
type Registered = (typeof registered)[number];
type RegisteredFields = Awaited<ReturnType<Registered['fields']>>;
/** Every kind's own spec fields together (each optional), for the static type of a spec. */
export type KindSpecFields = UnionToIntersection<RegisteredFields['spec']>;
/** Every kind's output fields together: an instance presents them all. */
export type KindOutputFields = UnionToIntersection<RegisteredFields['output']>;

export type KindName = Registered['name'];

export const kinds: readonly Kind[] = registered;
export const kindNames: readonly KindName[] = registered.map(k => k.name);

const byName = new Map(kinds.map(k => [k.name, k]));

export const findKind = (name: string): Kind | undefined => byName.get(name);

/** The kind of a stored instance or a validated spec: always registered. */
export function kindOf(name: string): Kind {
  const k = byName.get(name);
  if (!k) throw new Error(`no kind ${JSON.stringify(name)} is registered`);
  return k;
}

/** Every kind's TypeBox fields, by kind name (this loads TypeBox). */
export async function loadKindFields(): Promise<ReadonlyMap<string, KindFields>> {
  return new Map(await Promise.all(kinds.map(async k => [k.name, await k.fields()] as const)));
}

/**
 * Fields of `spec` that only other kinds have (`fields`: every kind's, from
 * loadKindFields): refused by name, rather than as unknown or silently ignored.
 */
export function foreignFields(kind: Kind, spec: object, fields: ReadonlyMap<string, KindFields>): Problem[] {
  const has = (k: Kind, field: string) => Object.hasOwn(fields.get(k.name)?.spec ?? {}, field);
  const problems: Problem[] = [];
  for (const field of Object.keys(spec)) {
    if (has(kind, field)) continue;
    const owners = kinds.filter(k => has(k, field));
    if (owners.length === 0) continue;
    const note = kind.foreignFieldsNote ? `: ${kind.foreignFieldsNote}` : '';
    problems.push({
      field: `body.${field}`,
      message: `applies to ${owners.map(k => k.plural).join(' and ')} only (kind ${owners.map(k => k.name).join(', ')})${note}`,
    });
  }
  return problems;
}

/** Every kind's output fields of an instance, from its stored options document. */
export function presentKindFields(options: Record<string, unknown>): SpecOf<KindOutputFields> {
  return Object.assign({}, ...kinds.map(k => k.present(options))) as SpecOf<KindOutputFields>;
}

/** One driver per kind, its capabilities checked against its kind's. */
export async function createDrivers(settings: DriverSettings): Promise<Driver[]> {
  return Promise.all(
    kinds.map(async k => {
      const d = await k.createDriver(settings);
      if (d.name !== k.name || !sameCapabilities(d.capabilities, k.capabilities))
        throw new Error(`the ${d.name} driver does not declare what kind ${k.name} does`);
      return d;
    }),
  );
}

export { healthCheckProblem, requireCapability } from './capabilities.ts';
export type { CliFlag, DriverSettings, Kind, KindFields, Problem } from './kind.ts';
