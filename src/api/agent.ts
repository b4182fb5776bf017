// /v1/agent: the protocol between the control plane and host agents.
// Registration trades a join token for a host credential; heartbeats keep the
// host ready; the assignment watch is a long-poll that returns the moment the
// host's assignments change; status reports move instances along their state machine.
import { ApiError } from '../lib/errors.ts';
import { requireAgent } from '../services/access.ts';
import * as agents from '../services/agents.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import {
  AssignmentQuery,
  Heartbeat,
  HeartbeatAck,
  ObservedReport,
  Register,
  Registered,
  StatusReportBody,
} from '../model/agent-protocol.ts';
import { presentHost, presentInstance } from './present.ts';
import { Assignments, Instance } from '../kinds/schemas.ts';
import { IdParam } from '../model/schemas.ts';
import { ConductedNodes, StepReport } from '../model/nodes.ts';
import { Type } from 'typebox';

const tags = ['agent'];

export function agentRoutes(app: App, { store, services, guard }: RouteDeps): void {
  /**
   * A long-poll of the host's version: returns when it differs from the one the
   * agent last saw, after its wait, or when the agent hangs up. The version is
   * read before the rows: a change landing in between makes the next call
   * return at once instead of being missed.
   */
  async function changed(
    req: {
      query: { version?: string | undefined; waitSeconds?: number | undefined };
      raw: { once(e: 'close', f: () => void): unknown };
    },
    hostId: string,
  ): Promise<string> {
    const abort = new AbortController();
    req.raw.once('close', () => abort.abort());
    await services.agents.wait(hostId, req.query.version, (req.query.waitSeconds ?? 30) * 1000, abort.signal);
    return services.agents.version(hostId);
  }

  app.post(
    '/agent/register',
    {
      config: { auth: false },
      schema: {
        tags,
        summary: "Register a host with a join token; answers the agent's credential",
        body: Register,
        response: { 201: Registered },
      },
    },
    async (req, reply) => {
      const b = req.body;
      guard.check(req.ip);
      const jt = await agents.validJoinToken(store, b.joinToken);
      if (!jt) {
        guard.failed(req.ip);
        throw new ApiError('unauthenticated', 'invalid or expired join token');
      }
      const { host, secret } = await agents.register(store, jt, b);
      return reply
        .code(201)
        .send({ host: presentHost(host), token: secret, heartbeatSeconds: services.heartbeatSeconds });
    },
  );

  app.post(
    '/agent/heartbeat',
    {
      schema: {
        tags,
        summary: 'Heartbeat, optionally with a fresh fingerprint',
        body: Heartbeat,
        response: { 200: HeartbeatAck },
      },
    },
    async req => {
      const a = requireAgent(principalOf(req));
      const host = await agents.heartbeat(store, a.hostId, req.body.fingerprint);
      return { host: presentHost(host), heartbeatSeconds: services.heartbeatSeconds };
    },
  );

  app.get(
    '/agent/assignments',
    {
      schema: {
        tags,
        summary: "The host's instances; waits until they change when given the last version",
        querystring: AssignmentQuery,
        response: { 200: Assignments },
      },
    },
    async req => {
      const a = requireAgent(principalOf(req));
      const version = await changed(req, a.hostId);
      const held = await agents.assignments(store, services.secrets, a.hostId);
      return { version, instances: held.map(({ row, env }) => ({ ...presentInstance(row), env })) };
    },
  );

  app.get(
    '/agent/nodes',
    {
      schema: {
        tags,
        summary:
          'The bare-metal nodes this host conducts, with their BMC credentials; waits until they change when given the last version',
        querystring: AssignmentQuery,
        response: { 200: ConductedNodes },
      },
    },
    async req => {
      const a = requireAgent(principalOf(req));
      const version = await changed(req, a.hostId);
      return { version, nodes: await services.nodes.conducted(a.hostId) };
    },
  );

  app.post(
    '/agent/nodes/:id/step',
    {
      schema: {
        tags,
        summary: 'Report the end of the provisioning step a conductor worked on',
        params: IdParam,
        body: StepReport,
        response: { 200: Type.Object({ provisionState: Type.String() }) },
      },
    },
    async req => {
      const a = requireAgent(principalOf(req));
      const n = await services.nodes.report(a.hostId, req.params.id, req.body);
      return { provisionState: n.provision_state };
    },
  );

  app.post(
    '/agent/instances/:id/status',
    {
      schema: {
        tags,
        summary: 'Report what the agent observes of an instance',
        params: IdParam,
        body: StatusReportBody,
        response: { 200: Instance },
      },
    },
    async req => {
      const a = requireAgent(principalOf(req));
      const row = await services.instances.report(a.hostId, req.params.id, req.body, `agent:${a.name}`);
      return presentInstance(row);
    },
  );

  app.post(
    '/agent/instances/:id/observed',
    {
      schema: {
        tags,
        summary: "Report what the agent observes beyond the state: the instance's address, published ports, health",
        params: IdParam,
        body: ObservedReport,
        response: { 200: Instance },
      },
    },
    async req => {
      const a = requireAgent(principalOf(req));
      const row = await services.instances.observe(a.hostId, req.params.id, req.body, `agent:${a.name}`);
      return presentInstance(row);
    },
  );
}
