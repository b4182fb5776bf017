// Builds the HTTP API: Fastify with validated routes, one JSON error shape,
// bearer-token auth on /v1 and the OpenAPI document generated from the schemas.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { ApiError } from '../lib/errors.ts';
import type { Store } from '../store/store.ts';
import { Authenticator, type Principal } from '../services/auth.ts';
import { storeAnswers } from '../services/projects.ts';
import { ErrorBody, NoQuery } from '../model/schemas.ts';
import { RateLimiter, rateLimited } from './rate-limit.ts';
import { StreamSlots } from './stream-slots.ts';
import { describeValidation, validatorCompiler } from './validation.ts';
import type { Services } from './services.ts';
import { agentRoutes } from './agent.ts';
import { deploymentRoutes } from './deployments.ts';
import { eventRoutes } from './events.ts';
import { groupRoutes } from './groups.ts';
import { hostRoutes } from './hosts.ts';
import { instanceRoutes } from './instances.ts';
import { joinTokenRoutes } from './join-tokens.ts';
import { nodeRoutes } from './nodes.ts';
import { projectRoutes } from './projects.ts';
import { secretRoutes } from './secrets.ts';
import { streamRoutes } from './streams.ts';
import { tokenRoutes } from './tokens.ts';
import { userRoutes } from './users.ts';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
  interface FastifyContextConfig {
    /** false: the route authenticates by itself (health, docs, agent registration). */
    auth?: boolean;
  }
}

export type App = FastifyInstance<
  import('node:http').Server,
  import('node:http').IncomingMessage,
  import('node:http').ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** Bounds on what one client can hold of the server. */
export interface HttpLimits {
  /** A request's headers and body must arrive within this (a slow sender is answered 408 and cut off). */
  requestTimeoutMs: number;
  /** Its headers, within this. */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Connections beyond this are closed as they come. */
  maxConnections: number;
  /** Long-lived streams (events, logs, exec, console) one token may hold open at once... */
  streamsPerToken: number;
  /** ...and the whole server. */
  streams: number;
  /** An event follower that lets this much pile up unsent is too slow: it is cut off, and may come back with ?since. */
  streamBufferBytes: number;
  /** Failed authentications one client address may make: a burst, then so many a second. */
  authFailureBurst: number;
  authFailuresPerSecond: number;
  /** Requests one token may make: a burst, then so many a second (0: no limit). */
  tokenBurst: number;
  tokenRequestsPerSecond: number;
}

export const defaultHttpLimits: HttpLimits = {
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 30_000,
  maxConnections: 4096,
  streamsPerToken: 16,
  streams: 1024,
  streamBufferBytes: 1 << 20,
  authFailureBurst: 50,
  authFailuresPerSecond: 5,
  tokenBurst: 2000,
  tokenRequestsPerSecond: 1000,
};

export interface AppOptions {
  store: Store;
  services: Services;
  logger: FastifyBaseLogger;
  version: string;
  limits?: Partial<HttpLimits> | undefined;
}

export const BODY_LIMIT = 1024 * 1024;

export async function buildApp(opts: AppOptions): Promise<App> {
  const limits = { ...defaultHttpLimits, ...opts.limits };
  const app: App = Fastify({
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks the timeouts above at this interval (30 s by default).
    http: {
      headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
      connectionsCheckingInterval: Math.min(1000, limits.requestTimeoutMs),
    },
    // What Node refuses before any route runs (a slow or malformed request) gets the one error shape too.
    clientErrorHandler: (err, socket) => {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      const timeout = code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT';
      if (!timeout && code === 'ECONNRESET') return void socket.destroy();
      const [status, reason, body] = timeout
        ? [
            408,
            'Request Timeout',
            {
              code: 'request_timeout',
              message: `the request did not arrive within ${limits.requestTimeoutMs / 1000} s`,
            },
          ]
        : code === 'HPE_HEADER_OVERFLOW'
          ? [
              431,
              'Request Header Fields Too Large',
              { code: 'invalid_request', message: 'the request headers are too large' },
            ]
          : [400, 'Bad Request', { code: 'invalid_request', message: 'the request is not valid HTTP' }];
      const text = JSON.stringify({ error: body });
      if (!socket.writable) return void socket.destroy();
      socket.end(
        `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
    },
    loggerInstance: opts.logger,
    // Requests are not logged one by one: at API rates that is most of the cost.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false } },
    // Errors the router raises before any route runs get the one error shape too.
    frameworkErrors: (err, _req, res) => {
      const tooLong = err.code === 'FST_ERR_MAX_PARAM_LENGTH';
      const reply = res as unknown as import('fastify').FastifyReply;
      void reply.code(tooLong ? 414 : 400).send({
        error: {
          code: 'invalid_request',
          message: tooLong ? 'a path parameter is too long' : 'the request URL is malformed',
        },
      });
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.server.maxConnections = limits.maxConnections;
  app.setValidatorCompiler(validatorCompiler);
  app.decorateRequest('principal', undefined);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
  });

  // Every route documents the error shape it may answer with.
  app.addHook('onRoute', route => {
    if (route.config?.auth === false && !route.url.startsWith('/v1')) return;
    route.schema ??= {};
    const schema = route.schema;
    // A route that takes no query parameters refuses unknown ones too.
    schema.querystring ??= NoQuery;
    schema.response ??= {};
    const response = schema.response as Record<string, unknown>;
    for (const status of ['4xx', '5xx']) response[status] ??= ErrorBody;
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Strata API',
        version: opts.version,
        description: 'One API for containers, virtual machines and bare-metal servers.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  // Before the routes, so WebSocket upgrades reach the routes that take them.
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } });

  const authenticator = new Authenticator(opts.store);
  const guard = new AuthGuard(limits);
  app.addHook('onRequest', async req => {
    if (!req.url.startsWith('/v1/') || req.routeOptions.config.auth === false) return;
    guard.check(req.ip);
    try {
      req.principal = await authenticator.authenticate(req.headers.authorization);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) guard.failed(req.ip);
      throw err;
    }
    guard.request(req.principal.tokenId);
  });

  app.get('/healthz', { config: { auth: false }, schema: { hide: true } }, async () => {
    await storeAnswers(opts.store);
    return { status: 'ok', version: opts.version };
  });
  app.get('/openapi.json', { config: { auth: false }, schema: { hide: true } }, async () => app.swagger());

  const slots = new StreamSlots({ perToken: limits.streamsPerToken, total: limits.streams });
  const deps = { store: opts.store, services: opts.services, authenticator, slots, guard, limits };
  await app.register(
    async v1 => {
      const r = v1 as unknown as App;
      projectRoutes(r, deps);
      userRoutes(r, deps);
      tokenRoutes(r, deps);
      hostRoutes(r, deps);
      nodeRoutes(r, deps);
      joinTokenRoutes(r, deps);
      instanceRoutes(r, deps);
      deploymentRoutes(r, deps);
      groupRoutes(r, deps);
      secretRoutes(r, deps);
      eventRoutes(r, deps);
      streamRoutes(r, deps);
      agentRoutes(r, deps);
    },
    { prefix: '/v1' },
  );
  return app;
}

export interface RouteDeps {
  store: Store;
  services: Services;
  authenticator: Authenticator;
  slots: StreamSlots;
  guard: AuthGuard;
  limits: HttpLimits;
}

/**
 * Rate limits around authentication: a client address that keeps presenting
 * bad credentials is refused (429) before they are even checked, and each
 * token may make only so many requests a second.
 */
export class AuthGuard {
  private readonly failures: RateLimiter;
  private readonly requests: RateLimiter | undefined;
  private readonly limits: HttpLimits;

  constructor(limits: HttpLimits) {
    this.limits = limits;
    this.failures = new RateLimiter({ perSecond: limits.authFailuresPerSecond, burst: limits.authFailureBurst });
    this.requests =
      limits.tokenRequestsPerSecond > 0
        ? new RateLimiter({ perSecond: limits.tokenRequestsPerSecond, burst: limits.tokenBurst })
        : undefined;
  }

  /** Refuses an address whose failures used up its allowance. */
  check(address: string): void {
    const wait = this.failures.empty(address);
    if (wait) throw rateLimited(`too many failed authentications from ${address}; try again in ${wait} s`, wait);
  }

  failed(address: string): void {
    this.failures.take(address);
  }

  request(tokenId: string): void {
    const wait = this.requests?.take(tokenId) ?? 0;
    if (wait)
      throw rateLimited(
        `this token made more than ${this.limits.tokenRequestsPerSecond} requests a second; try again in ${wait} s`,
        wait,
      );
  }
}

/** The authenticated caller; the onRequest hook guarantees it on /v1 routes. */
export function principalOf(req: { principal: Principal | undefined }): Principal {
  if (!req.principal) throw new ApiError('unauthenticated', 'authentication required');
  return req.principal;
}

function errorHandler(
  this: FastifyInstance,
  err: FastifyError,
  req: import('fastify').FastifyRequest,
  reply: import('fastify').FastifyReply,
): import('fastify').FastifyReply {
  const send = (status: number, code: string, message: string, details?: unknown) =>
    reply.code(status).send({ error: details === undefined ? { code, message } : { code, message, details } });
  if (err instanceof ApiError) {
    const retry = (err.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds;
    if (err.status === 429 && retry !== undefined) void reply.header('retry-after', String(retry));
    return send(err.status, err.code, err.message, err.details);
  }
  if (err.validation) {
    const { message, details } = describeValidation(err.validation as never, err.validationContext);
    return send(400, 'invalid_request', message, details);
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return send(400, 'invalid_request', `request body is not valid JSON: ${err.message}`);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return send(413, 'payload_too_large', `request body is larger than ${BODY_LIMIT} bytes`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return send(415, 'unsupported_media_type', 'request body must be application/json');
  }
  const sqliteCode = (err as { code?: string }).code ?? '';
  if (sqliteCode.startsWith('SQLITE_CONSTRAINT')) {
    return send(409, 'conflict', 'the change conflicts with existing state');
  }
  if (sqliteCode === 'SQLITE_BUSY') return send(503, 'unavailable', 'the store is busy; retry');
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return send(err.statusCode, 'invalid_request', err.message);
  }
  req.log.error({ err }, 'unhandled error');
  return send(500, 'internal', 'internal error; see the server log');
}
