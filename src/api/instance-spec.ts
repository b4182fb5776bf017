// Validation of an instance spec: a union of one schema per kind, told apart
// by `kind`. Checking it as a plain union would report every kind's complaints
// at once; this checks the spec against its own kind's schema only, and names
// a field that belongs to another kind as such.
import type { ErrorObject } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';
import { findKind, foreignFields, type Kind, kindNames, kinds } from '../kinds/index.ts';
import { kindFields, kindSpec } from '../kinds/schemas.ts';
import { compileBody, validatorCompiler } from './validation.ts';

export type Validator = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

export const error = (instancePath: string, keyword: string, message: string, params: Record<string, unknown> = {}) =>
  ({ instancePath, schemaPath: '#', keyword, params, message }) satisfies ErrorObject;

/** A validator of an instance spec; `schemaOf` gives each kind's schema (a deployment's template leaves some fields out). */
export function instanceSpecValidator(schemaOf: (k: Kind) => TSchema = kindSpec): Validator {
  const byKind = new Map(kinds.map(k => [k.name, compileBody(schemaOf(k))]));
  const validate: Validator = data => {
    validate.errors = null;
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      validate.errors = [error('', 'type', 'must be object', { type: 'object' })];
      return false;
    }
    const kindName = (data as { kind?: unknown }).kind;
    if (kindName === undefined) {
      validate.errors = [error('', 'required', "must have required property 'kind'", { missingProperty: 'kind' })];
      return false;
    }
    const kind = typeof kindName === 'string' ? findKind(kindName) : undefined;
    const check = kind && byKind.get(kind.name);
    if (!kind || !check) {
      validate.errors = [error('/kind', 'enum', 'must be one of the kinds', { allowedValues: kindNames })];
      return false;
    }
    const foreign = foreignFields(kind, data, kindFields);
    const named = new Set(foreign.map(p => p.field.slice('body.'.length)));
    check(data);
    const errors = [
      ...foreign.map(p => error(`/${p.field.slice('body.'.length)}`, 'kind', p.message)),
      // A field of another kind is said so above, not again as unknown.
      ...(check.errors ?? []).filter(
        e =>
          !(
            e.keyword === 'additionalProperties' &&
            e.instancePath === '' &&
            named.has(String(e.params.additionalProperty))
          ),
      ),
    ];
    validate.errors = errors.length > 0 ? errors : null;
    return errors.length === 0;
  };
  return validate;
}

/** The route's compiler: the instance spec for its body, the usual for the rest. */
export const instanceSpecCompiler: FastifySchemaCompiler<unknown> = req =>
  req.httpPart === 'body' ? instanceSpecValidator() : validatorCompiler(req);
