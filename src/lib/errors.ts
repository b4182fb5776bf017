// The one error type routes throw. The HTTP layer turns it into
// { "error": { "code", "message", "details"? } } with its status.
export type ErrorCode =
  | 'invalid_request'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'request_timeout'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'unprocessable'
  | 'quota_exceeded'
  | 'rate_limited'
  | 'unavailable'
  | 'internal';

const statusOf: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  request_timeout: 408,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unprocessable: 422,
  quota_exceeded: 422,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.code = code;
    this.status = statusOf[code];
    this.details = details;
  }
}

export const notFound = (what: string, id: string): ApiError =>
  new ApiError('not_found', `${what} ${JSON.stringify(id)} not found`);
export const forbidden = (message: string): ApiError => new ApiError('forbidden', message);
export const conflict = (message: string, details?: unknown): ApiError => new ApiError('conflict', message, details);
export const invalid = (message: string, details?: unknown): ApiError =>
  new ApiError('invalid_request', message, details);
