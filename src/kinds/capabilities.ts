// Refusals of what a kind cannot serve: a 400 that names the kind and the
// capability, given when the request comes, never a failure on the host later.
import { ApiError } from '../lib/errors.ts';
import type { Capability, HealthCheckType } from '../model/capabilities.ts';
import type { Kind, Problem } from './kind.ts';

/** Throws the 400 for `what` on an instance of `kind` when the kind lacks it. */
export function requireCapability(kind: Kind, what: Capability, instance: string): void {
  if (kind.capabilities[what]) return;
  const hint = kind.hints?.[what];
  throw new ApiError(
    'invalid_request',
    `${what} is not supported for kind ${kind.name} (instance ${instance})${hint ? `: ${hint}` : ''}`,
    { kind: kind.name, capability: what },
  );
}

/** A health check of a type the kind's hosts cannot run, as a problem of the spec. */
export function healthCheckProblem(kind: Kind, type: HealthCheckType): Problem | undefined {
  const supported = kind.capabilities.healthChecks;
  if (supported.includes(type)) return undefined;
  const hint = kind.hints?.healthChecks;
  const them = supported.length > 0 ? `it takes ${supported.join(' and ')} checks` : 'it takes none';
  return {
    field: 'body.healthCheck.type',
    message: `${type} health checks are not supported for kind ${kind.name} (${them})${hint ? `: ${hint}` : ''}`,
  };
}
