// Logs and exec: user streams relayed through the server to the agent that
// holds the instance (see src/api/stream-hub.ts for how the agent is reached).
//
//   GET /v1/instances/:id/logs?follow=true&tail=N   application/x-ndjson
//       {"stream":"stdout","data":"..."} per chunk of output
//   GET /v1/instances/:id/exec?command=sh&tty=true&stdin=true   WebSocket
//       frames of src/lib/stream-frames.ts; the last status frame has the exit code
//   GET /v1/agent/streams        WebSocket: an agent's control socket
//   GET /v1/agent/streams/:id    WebSocket: an agent's data socket for one stream
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type WebSocket from 'ws';
import { drainedOrClosed } from '../lib/drained.ts';
import { ApiError, conflict, notFound } from '../lib/errors.ts';
import { Channel, parseFrame, statusFrame } from '../lib/stream-frames.ts';
import { messages, send } from '../lib/ws-messages.ts';
import type { InstanceRow } from '../store/schema.ts';
import type { AgentStream } from './stream-hub.ts';
import type { StreamRequest } from '../model/streams.ts';
import { requireAgent, requireUser } from '../services/access.ts';
import { watchAccess } from './access-watch.ts';
import { streamTarget } from '../services/instances.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { IdParam } from '../model/schemas.ts';

const Closed = { additionalProperties: false } as const;

export const LogsQuery = Type.Object(
  {
    follow: Type.Optional(Type.Boolean({ description: 'keep the stream open and send new output as it comes' })),
    tail: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'only the last N lines' })),
  },
  Closed,
);
export const ExecQuery = Type.Object(
  {
    command: Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), {
      minItems: 1,
      maxItems: 256,
      description: 'the program and its arguments, one `command=` per word',
    }),
    tty: Type.Optional(Type.Boolean({ description: 'give the process a terminal' })),
    stdin: Type.Optional(Type.Boolean({ description: 'relay standard input (channel 0)' })),
    cols: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    rows: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  Closed,
);

const isUpgrade = (req: FastifyRequest) => req.headers.upgrade?.toLowerCase() === 'websocket';
const upgradeRequired = () =>
  new ApiError('invalid_request', 'this route speaks WebSocket: send an Upgrade: websocket request');
const needsUpgrade = async (_req: FastifyRequest, _reply: FastifyReply) => {
  throw upgradeRequired();
};
function requireUpgrade(req: FastifyRequest): void {
  if (!isUpgrade(req)) throw upgradeRequired();
}

export function streamRoutes(app: App, { store, services, slots, authenticator }: RouteDeps): void {
  /** The instance the caller may stream from, and its host; checks before any stream opens. */
  const target = async (
    req: FastifyRequest,
    id: string,
    role: 'reader' | 'member',
    capability?: 'exec' | 'console',
  ): Promise<{ row: InstanceRow; hostName: string }> => {
    const p = requireUser(principalOf(req));
    return streamTarget(store, p, id, role, capability);
  };
  /**
   * Opens the agent's stream for a caller with `role`: it holds one of the
   * caller's stream slots while open, and ends when the caller loses that
   * role. A caller that goes away stops the wait for a reconnecting agent.
   */
  const open = async (
    req: FastifyRequest,
    row: InstanceRow,
    hostName: string,
    r: StreamRequest,
    role: 'reader' | 'member',
  ): Promise<AgentStream> => {
    const caller = requireUser(principalOf(req));
    const release = slots.acquire(caller.tokenId);
    const gone = new AbortController();
    const onClose = () => gone.abort();
    req.raw.once('close', onClose);
    let stream: AgentStream;
    try {
      stream = await services.streams.open(row.host_id!, hostName, r, gone.signal);
    } catch (err) {
      release();
      throw err;
    } finally {
      req.raw.off('close', onClose);
    }
    const access = watchAccess(
      { store, authenticator },
      req.headers.authorization,
      caller,
      { projectId: row.project_id, role },
      () => stream.ws.close(1008, 'access revoked'),
    );
    stream.ws.once('close', () => {
      release();
      access.stop();
    });
    return stream;
  };
  /**
   * Exec and console: a member, a WebSocket upgrade, a running instance, then
   * the agent's stream, handed to the request's WebSocket handler.
   */
  const openInteractive = async (
    req: FastifyRequest,
    capability: 'exec' | 'console',
    request: (instance: string) => StreamRequest,
  ): Promise<void> => {
    const { id } = req.params as { id: string };
    const { row, hostName } = await target(req, id, 'member', capability);
    requireUpgrade(req);
    if (row.state !== 'running') throw conflict(`instance ${row.name} is not running (state ${row.state})`);
    opened.set(req, await open(req, row, hostName, request(row.id), 'member'));
  };

  app.get(
    '/instances/:id/logs',
    {
      schema: {
        tags: ['instances'],
        summary: "The instance's output as application/x-ndjson lines {stream, data}; ?follow=true keeps streaming",
        params: IdParam,
        querystring: LogsQuery,
      },
    },
    async (req, reply) => {
      const { row, hostName } = await target(req, req.params.id, 'reader');
      const stream = await open(
        req,
        row,
        hostName,
        { op: 'logs', instance: row.id, follow: req.query.follow ?? false, tail: req.query.tail },
        'reader',
      );
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'application/x-ndjson',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
      });
      req.raw.on('close', () => stream.ws.close());
      try {
        for await (const msg of stream.messages) {
          const f = parseFrame(msg);
          if (!f || (f.channel !== Channel.stdout && f.channel !== Channel.stderr)) continue;
          const line = `${JSON.stringify({ stream: f.channel === Channel.stdout ? 'stdout' : 'stderr', data: f.payload.toString('utf8') })}\n`;
          if (!raw.write(line)) await drainedOrClosed(raw);
        }
      } catch {
        // The agent went away mid-stream: end what was sent.
      }
      raw.end();
    },
  );

  app.route({
    method: 'GET',
    url: '/instances/:id/exec',
    schema: {
      tags: ['instances'],
      summary: 'Run a command in a running instance (members); a WebSocket of channel-prefixed frames',
      description:
        'Binary messages start with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 status (JSON: {"exitCode":N} at the end), 4 resize (JSON {"cols","rows"}), 5 end of stdin.',
      params: IdParam,
      querystring: ExecQuery,
    },
    preHandler: async req => {
      const q = req.query as { command: string[]; tty?: boolean; stdin?: boolean; cols?: number; rows?: number };
      await openInteractive(req, 'exec', instance => ({
        op: 'exec',
        instance,
        command: q.command,
        tty: q.tty ?? false,
        stdin: q.stdin ?? false,
        cols: q.cols,
        rows: q.rows,
      }));
    },
    handler: needsUpgrade,
    wsHandler: relayOpened,
  });

  app.route({
    method: 'GET',
    url: '/instances/:id/console',
    schema: {
      tags: ['instances'],
      summary: "Attach to a running VM's serial console (members); a WebSocket with the exec framing",
      params: IdParam,
    },
    preHandler: async req => {
      await openInteractive(req, 'console', instance => ({ op: 'console', instance }));
    },
    handler: needsUpgrade,
    wsHandler: relayOpened,
  });

  app.route({
    method: 'GET',
    url: '/agent/streams',
    schema: { tags: ['agent'], summary: "An agent's control WebSocket: the server asks it for streams here" },
    preHandler: async req => {
      requireAgent(principalOf(req));
      requireUpgrade(req);
    },
    handler: needsUpgrade,
    wsHandler: (ws, req) => services.streams.attachControl(requireAgent(principalOf(req)).hostId, ws),
  });

  app.route({
    method: 'GET',
    url: '/agent/streams/:id',
    schema: {
      tags: ['agent'],
      summary: "An agent's data WebSocket for one stream the server asked for",
      params: IdParam,
    },
    preHandler: async req => {
      const a = requireAgent(principalOf(req));
      const { id } = req.params as { id: string };
      if (!services.streams.awaits(a.hostId, id)) throw notFound('stream', id);
      requireUpgrade(req);
    },
    handler: needsUpgrade,
    wsHandler: (ws, req) => {
      const { id } = req.params as { id: string };
      if (!services.streams.attachData(requireAgent(principalOf(req)).hostId, id, ws)) ws.close(4404, 'no such stream');
    },
  });
}

/** Streams opened by the pre-handler, handed to the WebSocket handler of the same request. */
const opened = new WeakMap<FastifyRequest, AgentStream>();

function relayOpened(client: WebSocket, req: FastifyRequest): void {
  const agent = opened.get(req);
  opened.delete(req);
  if (agent) relayExec(client, agent);
  else client.close(1011, 'stream not opened');
}

/** Client <-> agent, frame by frame; the client may only send input, resize and end of input. */
function relayExec(client: WebSocket, agent: AgentStream): void {
  const clientToAgent = async () => {
    for await (const msg of messages(client)) {
      const f = parseFrame(msg);
      if (!f || (f.channel !== Channel.stdin && f.channel !== Channel.resize && f.channel !== Channel.eof)) continue;
      await send(agent.ws, msg);
    }
  };
  const agentToClient = async () => {
    for await (const msg of agent.messages) await send(client, msg);
  };
  clientToAgent()
    .catch(() => undefined)
    .finally(() => agent.ws.close());
  agentToClient()
    .catch(() => {
      if (client.readyState === client.OPEN)
        client.send(statusFrame({ error: { code: 'unavailable', message: 'the agent closed the stream' } }));
    })
    .finally(() => client.close());
}
