// Request validation. Bodies are validated strictly: no type coercion, no
// silently dropped unknown fields, every error reported. Query strings and path
// parameters arrive as text, so those are coerced to the schema's types.
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule, { type FormatsPlugin } from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

// ajv-formats is CommonJS; its default export arrives wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: FormatsPlugin }).default ??
  addFormatsModule) as FormatsPlugin;

function makeAjv(coerceTypes: boolean | 'array'): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    coerceTypes,
    useDefaults: true,
    removeAdditional: false,
    strict: false,
  });
  addFormats(ajv);
  return ajv;
}

const strict = makeAjv(false);
// 'array': a query key given once still fills an array parameter (?command=sh).
const coercing = makeAjv('array');

/** A validator for a request body, as the routes' own are compiled. */
export const compileBody = (schema: object) => strict.compile(schema);

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? strict : coercing;
  return ajv.compile(schema as object);
};

export function describeValidation(
  errors: ErrorObject[],
  part: string | undefined,
): { message: string; details: unknown } {
  const details = errors.map(e => {
    const where = `${part ?? 'body'}${e.instancePath.replaceAll('/', '.')}`;
    let msg = e.message ?? 'is invalid';
    if (e.keyword === 'additionalProperties') msg = `has unknown field ${JSON.stringify(e.params.additionalProperty)}`;
    if (e.keyword === 'enum')
      msg = `must be one of ${(e.params.allowedValues as unknown[]).map(v => JSON.stringify(v)).join(', ')}`;
    return { field: where, message: msg };
  });
  const first = details[0];
  const message = first ? `${first.field} ${first.message}` : 'request is invalid';
  return { message: details.length > 1 ? `${message} (and ${details.length - 1} more)` : message, details };
}
