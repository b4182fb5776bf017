// /v1/events: the append-only change log, as a page or as a server-sent event
// stream (?follow=true). Callers see events of their own projects only; events
// of no project (users, tokens) are for cluster admins.
import { ApiError } from '../lib/errors.ts';
import { drainedOrClosed } from '../lib/drained.ts';
import type { EventRow } from '../store/schema.ts';
import { watchAccess } from './access-watch.ts';
import { requireUser } from '../services/access.ts';
import * as events from '../services/events.ts';
import { principalOf, type App, type RouteDeps } from './app.ts';
import { presentEvent } from './present.ts';
import { Event, EventQuery } from '../model/schemas.ts';
import { Type } from 'typebox';

const tags = ['events'];
const KEEPALIVE_MS = 15_000;

export function eventRoutes(app: App, { store, authenticator, slots, limits }: RouteDeps): void {
  app.get(
    '/events',
    {
      schema: {
        tags,
        summary: 'List events, or follow them as text/event-stream with ?follow=true',
        querystring: EventQuery,
        response: { 200: Type.Object({ items: Type.Array(Event), nextSince: Type.Integer() }) },
      },
    },
    async (req, reply) => {
      let p = requireUser(principalOf(req));
      const qs = req.query;
      let projectId: string | undefined;
      if (qs.project !== undefined) projectId = await events.projectOf(store, p, qs.project);
      const allowed = (e: EventRow): boolean =>
        (projectId === undefined || e.project_id === projectId) &&
        (qs.resource === undefined || e.resource_id === qs.resource) &&
        events.mayRead(p, e);
      const limit = qs.limit ?? 100;

      const backlog = (since: number, n: number): Promise<EventRow[]> =>
        events.backlog(store, p, { projectId, resource: qs.resource, since, limit: n });

      if (!qs.follow) {
        const rows = await backlog(qs.since ?? 0, limit);
        return { items: rows.map(presentEvent), nextSince: rows.at(-1)?.seq ?? qs.since ?? 0 };
      }
      if (
        !req.headers.accept?.includes('text/event-stream') &&
        req.headers.accept &&
        !req.headers.accept.includes('*/*')
      ) {
        throw new ApiError('invalid_request', 'follow=true answers text/event-stream; send Accept: text/event-stream');
      }

      const release = slots.acquire(p.tokenId);
      // Subscribe before reading the backlog so nothing falls between the two.
      const buffered: EventRow[] = [];
      let live = false;
      let last = qs.since ?? 0;
      const raw = reply.raw;
      /** Writes one event; false when the client should be waited for (the backlog does). */
      const write = (e: EventRow): boolean => {
        if (e.seq <= last || !allowed(e) || raw.destroyed) return true;
        last = e.seq;
        const ok = raw.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(presentEvent(e))}\n\n`);
        if (raw.writableLength > limits.streamBufferBytes) raw.destroy();
        return ok;
      };
      // The stream ends once the caller may no longer read what it follows.
      const access = watchAccess({ store, authenticator }, req.headers.authorization, p, { projectId }, () =>
        raw.end(),
      );
      const off = store.onEvent(e => {
        p = access.principal();
        if (live) write(e);
        else buffered.push(e);
      });
      reply.hijack();
      raw.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      raw.write(': connected\n\n');
      const keepalive = setInterval(() => raw.write(': keepalive\n\n'), KEEPALIVE_MS);
      const close = () => {
        access.stop();
        off();
        clearInterval(keepalive);
        release();
      };
      req.raw.on('close', close);
      raw.on('close', close);
      try {
        if (qs.since !== undefined) {
          for (;;) {
            const rows = await backlog(last, 1000);
            for (const e of rows) if (!write(e)) await drainedOrClosed(raw);
            if (rows.length < 1000 || raw.destroyed) break;
          }
        }
        buffered.forEach(write);
        live = true;
      } catch (err) {
        close();
        raw.destroy(err as Error);
      }
    },
  );
}
