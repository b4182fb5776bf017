// `strata events`: the change log, as a list or followed live (-f) over the
// server-sent event stream.
import type { Command } from 'commander';
import { ConnectError, type Event, type Query } from './client.ts';
import { ctxOf, INSTANCE_ID, intArg, leaf } from './common.ts';
import { resolveInstance } from './instances.ts';
import { col, note, out, renderList, serialize } from './output.ts';
import { exitOnInterrupt } from './watch.ts';

const RECONNECT_MS = 1000;

function dataText(data: Record<string, unknown>): string {
  return Object.entries(data)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

export function eventLine(e: Event): string {
  return [
    e.at,
    `#${e.seq}`.padEnd(6),
    e.type.padEnd(20),
    `${e.resourceType}/${e.resourceId}`,
    e.actor,
    dataText(e.data),
  ]
    .join('  ')
    .trimEnd();
}

interface Flags {
  follow?: boolean;
  since?: number;
  resource?: string;
  limit?: number;
  all?: boolean;
  allProjects?: boolean;
}

export function eventsCommand(): Command {
  return leaf('events', 'list events of the project, or follow them live with -f')
    .option('-f, --follow', 'stream new events as they happen (Ctrl-C to stop)')
    .option('--since <seq>', 'only events after this sequence number (with -f: replay them first)', intArg())
    .option('--resource <id>', 'only events of this resource (an id, or an instance name)')
    .option('--limit <n>', 'events per page (the server allows 1-1000)', intArg(1))
    .option('--all', 'without -f: every page, not just the first')
    .option('-A, --all-projects', 'events of every project you can see (and, for cluster admins, of users and tokens)')
    .addHelpText(
      'after',
      '\nIn table mode -f prints one line per event; with -o json, one JSON object per line.\n\n' +
        'Examples:\n  strata events --since 100\n  strata events -f --resource web\n  strata events -f -A -o json | jq .type',
    )
    .action(async (o: Flags, c: Command) => {
      const ctx = ctxOf(c);
      let resource = o.resource;
      if (resource !== undefined && !/^[a-z]{3}_[0-9a-z]{26}$/.test(resource) && !INSTANCE_ID.test(resource)) {
        resource = await resolveInstance(ctx, resource);
      }
      const project = o.allProjects ? undefined : ctx.project;
      const query: Query = { project, resource, limit: o.limit };

      if (!o.follow) {
        const items: Event[] = [];
        let since = o.since ?? 0;
        let full = false;
        for (;;) {
          const page = await ctx.client.get<{ items: Event[]; nextSince: number }>('/v1/events', { ...query, since });
          items.push(...page.items);
          full = page.items.length === (o.limit ?? 100);
          if (!o.all || page.items.length === 0 || page.nextSince === since) break;
          since = page.nextSince;
        }
        if (full && !o.all && ctx.format === 'table')
          note(`(more events: use --since ${items.at(-1)?.seq ?? since} or --all)`);
        out(
          await renderList(
            items,
            [
              col('SEQ', e => e.seq),
              col('TIME', e => e.at),
              col('TYPE', e => e.type),
              col('RESOURCE', e => `${e.resourceType}/${e.resourceId}`),
              col('ACTOR', e => e.actor),
              col('DETAILS', e => dataText(e.data)),
            ],
            ctx.format,
            'No events.',
          ),
        );
        return;
      }

      exitOnInterrupt();
      let since = o.since;
      let announced = false;
      const print = async (e: Event) => {
        since = e.seq;
        if (ctx.format === 'json') out(JSON.stringify(e));
        else if (ctx.format === 'yaml') out(`---\n${await serialize(e, 'yaml')}`);
        else out(eventLine(e));
      };
      let chain: Promise<void> = Promise.resolve();
      for (;;) {
        try {
          await ctx.client.follow(
            { ...query, limit: undefined, since },
            {
              onOpen: () => {
                if (!announced)
                  note(
                    `Following events${project ? ` of project ${project}` : ''} at ${ctx.client.url} (Ctrl-C to stop)`,
                  );
                else note('Reconnected.');
                announced = true;
              },
              onEvent: e => {
                chain = chain.then(() => print(e));
              },
            },
          );
          await chain;
          note(`The server closed the event stream; reconnecting.`);
        } catch (err) {
          if (!(err instanceof ConnectError) || !announced) throw err;
          note(`Lost the event stream (${err.message}); reconnecting.`);
        }
        // With no event seen yet there is no position to resume from: events
        // during the gap are missed, as the note above says.
        await new Promise(r => setTimeout(r, RECONNECT_MS));
      }
    });
}
