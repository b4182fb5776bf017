// Validation of a deployment's body: its own fields by its schema, and its
// template as an instance spec of the template's kind (src/api/instance-spec.ts),
// so an error names the one field at fault (`body.template.resources.vcpus`).
import type { ErrorObject } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';
import { MAX_REPLICAS } from '../model/deployments.ts';
import { templateSpec } from '../kinds/schemas.ts';
import { instanceSpecValidator, type Validator } from './instance-spec.ts';
import { compileBody, validatorCompiler } from './validation.ts';

type ObjectSchema = { properties: Record<string, unknown> };

export function deploymentBodyValidator(schema: ObjectSchema): Validator {
  // The body's own fields: the template is only required to be an object here.
  const outer = compileBody({
    ...schema,
    properties: { ...schema.properties, template: { type: 'object' } },
  });
  const template = instanceSpecValidator(templateSpec);
  const validate: Validator = data => {
    outer(data);
    const errors = oneOfAlternatives(outer.errors ?? []);
    const t = (data as { template?: unknown } | null)?.template;
    if (t !== null && typeof t === 'object' && !Array.isArray(t) && !template(t))
      for (const e of template.errors ?? []) errors.push({ ...e, instancePath: `/template${e.instancePath}` });
    validate.errors = errors.length > 0 ? errors : null;
    return errors.length === 0;
  };
  return validate;
}

/**
 * A value that matches neither alternative of a count-or-percentage field is
 * one error that says what the field takes, rather than one per alternative.
 */
function oneOfAlternatives(errors: readonly ErrorObject[]): ErrorObject[] {
  const unions = new Set(errors.filter(e => e.keyword === 'anyOf').map(e => e.instancePath));
  return errors
    .filter(e => e.keyword === 'anyOf' || !unions.has(e.instancePath))
    .map(e =>
      e.keyword === 'anyOf'
        ? {
            ...e,
            message: `must be a number of replicas (0 to ${MAX_REPLICAS}) or a percentage of them, such as "25%"`,
          }
        : e,
    );
}

/** The compiler of the routes that take a deployment's spec: the body as above, the rest as usual. */
export const deploymentSpecCompiler: FastifySchemaCompiler<unknown> = req =>
  req.httpPart === 'body' ? deploymentBodyValidator(req.schema as unknown as ObjectSchema) : validatorCompiler(req);
