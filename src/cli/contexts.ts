// `strata login`, `strata context ...` and `strata whoami`: which server the
// CLI talks to, with which token, in which project.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Client, type Whoami } from './client.ts';
import { ctxOf, globalsOf, leaf, group, UsageError } from './common.ts';
import { configPath, deleteContext, readConfig, resolveTarget, saveContext, useContext } from './config.ts';
import { note, out, renderList, renderObject, col, serialize } from './output.ts';

function redact(token: string): string {
  return token.length > 12 ? `${token.slice(0, 8)}…` : '…';
}

function contextNameFor(url: string): string {
  try {
    const u = new URL(url);
    return (
      u.host
        .toLowerCase()
        .replace(/[^a-z0-9-]+/g, '-')
        .replace(/^-+|-+$/g, '') || 'default'
    );
  } catch {
    return 'default';
  }
}

function readToken(o: { token?: string; tokenFile?: string }): string {
  if (o.token !== undefined && o.tokenFile !== undefined)
    throw new UsageError('give --token or --token-file, not both');
  let token = o.token;
  if (o.tokenFile !== undefined) {
    try {
      token = readFileSync(o.tokenFile === '-' ? 0 : o.tokenFile, 'utf8');
    } catch (err) {
      throw new UsageError(
        `cannot read --token-file ${o.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  token ??= process.env.STRATA_TOKEN || undefined;
  token = token?.trim();
  if (!token)
    throw new UsageError(
      'no token: give --token T or --token-file FILE (a `strata server` writes admin.token in its data directory)',
    );
  return token;
}

export function loginCommand(): Command {
  return leaf('login', 'check a token against a server and save them as a context')
    .argument('<url>', 'server URL, e.g. http://127.0.0.1:7070')
    .option('--token <token>', 'API token (or $STRATA_TOKEN)')
    .option('--token-file <file>', 'read the token from a file ("-": standard input)')
    .option('--name <context>', 'context name (default: derived from the URL host)')
    .addHelpText(
      'after',
      '\nThe token is verified with GET /v1/whoami before it is saved. The context becomes current;\n' +
        'its project is --project, else "default" when you can see it, else your first project.\n\n' +
        'Example:\n  strata login http://10.0.0.5:7070 --token-file ~/strata-admin.token --name lab',
    )
    .action(async (rawUrl: string, o: { token?: string; tokenFile?: string; name?: string }, cmd: Command) => {
      let url: string;
      try {
        const u = new URL(/^[a-z]+:\/\//i.test(rawUrl) ? rawUrl : `http://${rawUrl}`);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
        url = u.toString().replace(/\/+$/, '');
      } catch {
        throw new UsageError(`${JSON.stringify(rawUrl)} is not an http(s) URL`);
      }
      const token = readToken(o);
      const g = globalsOf(cmd);
      const me = await new Client(url, token).get<Whoami>('/v1/whoami');
      if (me.kind !== 'user') throw new UsageError('that is an agent token; log in with a user token');
      const visible = me.projects.map(p => p.projectName);
      const project =
        g.project ?? (me.clusterAdmin || visible.includes('default') ? 'default' : (visible[0] ?? 'default'));
      const name = o.name ?? contextNameFor(url);
      const file = saveContext(name, { url, token, project }, { makeCurrent: true });
      if (g.output !== 'table') {
        out(await serialize({ context: name, url, project, configFile: file, user: me }, g.output));
        return;
      }
      out(`Logged in to ${url} as ${me.name}${me.clusterAdmin ? ' (cluster admin)' : ''}.`);
      out(`Context "${name}" saved in ${file} and made current; project: ${project}.`);
      if (!me.clusterAdmin && !visible.includes(project))
        note(`warning: you are not a member of project ${JSON.stringify(project)}`);
    });
}

export function contextCommand(): Command {
  const cmd = group('context', 'list, show, switch and delete saved contexts (server, token, project)');
  cmd.addHelpText(
    'after',
    `\nContexts live in $STRATA_CONFIG, else $XDG_CONFIG_HOME/strata/config.yaml (default ~/.config/strata/config.yaml).`,
  );

  cmd.addCommand(
    leaf('list', 'list contexts; * marks the current one')
      .alias('ls')
      .action(async (_o: unknown, c: Command) => {
        const g = globalsOf(c);
        const cfg = readConfig();
        const rows = Object.entries(cfg.contexts).map(([name, ctx]) => ({
          name,
          current: name === cfg.currentContext,
          url: ctx.url,
          project: ctx.project ?? null,
        }));
        out(
          await renderList(
            rows,
            [
              col('CURRENT', r => (r.current ? '*' : ' ')),
              col('NAME', r => r.name),
              col('URL', r => r.url),
              col('PROJECT', r => r.project),
            ],
            g.output,
            `No contexts in ${configPath()}: run \`strata login URL\` or \`strata dev\`.`,
          ),
        );
      }),
  );

  cmd.addCommand(
    leaf('use', 'make a context current')
      .argument('<name>', 'context name')
      .action(async (name: string) => {
        const file = useContext(name);
        out(`Switched to context "${name}" (${file}).`);
      }),
  );

  cmd.addCommand(
    leaf('show', 'show a context (default: the one in effect, with environment overrides)')
      .argument('[name]', 'context name')
      .action(async (name: string | undefined, _o: unknown, c: Command) => {
        const g = globalsOf(c);
        const t = resolveTarget({ context: name ?? g.context, project: g.project });
        const view = {
          context: t.context ?? null,
          url: t.url,
          project: t.project,
          token: redact(t.token),
          source: t.source,
          configFile: configPath(),
        };
        out(
          await renderObject(
            view,
            [
              ['Context', view.context],
              ['URL', view.url],
              ['Project', view.project],
              ['Token', view.token],
              ['From', view.source],
              ['Config file', view.configFile],
            ],
            g.output,
          ),
        );
      }),
  );

  cmd.addCommand(
    leaf('delete', 'delete a saved context')
      .alias('rm')
      .argument('<name>', 'context name')
      .action(async (name: string) => {
        deleteContext(name);
        out(`Deleted context "${name}".`);
      }),
  );
  return cmd;
}

export function whoamiCommand(): Command {
  return leaf('whoami', 'show who the token belongs to, and where the CLI points').action(
    async (_o: unknown, c: Command) => {
      const ctx = ctxOf(c);
      const me = await ctx.client.get<Whoami>('/v1/whoami');
      out(
        await renderObject(
          me,
          [
            ['Name', me.name],
            ['ID', me.id],
            ['Kind', me.kind],
            ['Cluster admin', me.clusterAdmin ? 'yes' : 'no'],
            ['Projects', me.projects.map(p => `${p.projectName}:${p.role}`).join(' ') || '-'],
            ['Server', ctx.client.url],
            ['Context', ctx.target.context ?? `(${ctx.target.source})`],
            ['Project', ctx.project],
          ],
          ctx.format,
        ),
      );
    },
  );
}
