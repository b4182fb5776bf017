// `strata apply|diff|delete -f FILE`: spec files (src/cli/spec-file.ts) made
// real. apply checks every document with the server first (a dry run: the
// schema, the kind's rules, references and quota) and changes nothing unless
// all pass; then it creates what is missing and updates what differs, saying
// `created`, `configured` or `unchanged` for each. diff says what apply would
// change, field by field; delete removes what the file names.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ApiError, type Deployment, type DeploymentDetail, enc, type Instance, type Page } from './client.ts';
import { collect, ctxOf, type Ctx, leaf, LocatedError, UsageError } from './common.ts';
import { findDeployment } from './deployments.ts';
import { out, serialize } from './output.ts';
import type { SpecDoc } from './spec-file.ts';

const FILE_HELP = 'a spec file (YAML, one or several documents); - reads standard input (repeatable)';

const EXAMPLE = `
A spec file:
  apiVersion: strata/v1
  kind: Deployment
  metadata:
    name: web
    project: default        # optional: -p, the context's project
  spec:
    replicas: 3
    template:               # an instance spec: what strata run takes
      kind: container
      image: nginx:1.27
      resources: {vcpus: 1, memoryMib: 256}
    strategy: {maxSurge: 1, maxUnavailable: 0}
  ---
  apiVersion: strata/v1
  kind: Instance            # a bare instance
  metadata: {name: db}
  spec: {kind: container, image: postgres:16}`;

async function readDocs(files: string[] | undefined): Promise<SpecDoc[]> {
  if (!files || files.length === 0) throw new UsageError('give a spec file with -f FILE (or -f - for standard input)');
  const { parseSpecFile } = await import('./spec-file.ts');
  const docs: SpecDoc[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f === '-' ? 0 : f, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${f}: ${(err as Error).message}`);
    }
    docs.push(...parseSpecFile(text, f === '-' ? '(stdin)' : f));
  }
  return docs;
}

const ref = (d: SpecDoc) => `${d.kind.toLowerCase()}/${d.name}`;
const projectOf = (ctx: Ctx, d: SpecDoc) => d.project ?? ctx.project;

/** An API refusal of a document, at the places of the fields it names. */
function located(d: SpecDoc, err: ApiError): LocatedError {
  const details = Array.isArray(err.details)
    ? (err.details as unknown[]).filter(
        (x): x is { field: string; message: string } =>
          typeof x === 'object' && x !== null && 'field' in x && 'message' in x,
      )
    : [];
  if (details.length > 0)
    return new LocatedError(
      details.map(x => ({ where: d.locate(x.field, x.message), message: `${d.pathOf(x.field)} ${x.message}` })),
    );
  const where = err.code === 'quota_exceeded' && d.kind === 'Deployment' ? d.locate('body.replicas') : d.where;
  return new LocatedError([{ where, message: `${ref(d)}: ${err.message}` }]);
}

/** Runs `fn` for every document, collecting the API's refusals at their places; throws them all at the end. */
async function eachDoc<T>(docs: SpecDoc[], fn: (d: SpecDoc) => Promise<T>): Promise<T[]> {
  const problems: LocatedError['problems'] = [];
  const results: T[] = [];
  for (const d of docs) {
    try {
      results.push(await fn(d));
    } catch (err) {
      if (err instanceof LocatedError) problems.push(...err.problems);
      else if (err instanceof ApiError && err.status < 500) problems.push(...located(d, err).problems);
      else throw err;
    }
  }
  if (problems.length > 0) throw new LocatedError(problems);
  return results;
}

const deploymentBody = (d: SpecDoc) => ({ ...(d.labels ? { labels: d.labels } : {}), ...d.spec });
const instanceBody = (ctx: Ctx, d: SpecDoc) => ({
  ...d.spec,
  project: projectOf(ctx, d),
  name: d.name,
  ...(d.labels ? { labels: d.labels } : {}),
});

async function findInstance(ctx: Ctx, project: string, name: string): Promise<Instance | undefined> {
  return (await ctx.client.get<Page<Instance>>('/v1/instances', { project, name, limit: 1 })).items[0];
}

/** What applying a document would do, found by a dry run. */
type Step =
  | { doc: SpecDoc; kind: 'Deployment'; action: 'create'; would: Deployment }
  | { doc: SpecDoc; kind: 'Deployment'; action: 'update' | 'unchanged'; now: Deployment; would: Deployment }
  | { doc: SpecDoc; kind: 'Instance'; action: 'create'; would: Instance }
  | { doc: SpecDoc; kind: 'Instance'; action: 'unchanged'; now: Instance; differs: string[] };

async function plan(ctx: Ctx, d: SpecDoc): Promise<Step> {
  const project = projectOf(ctx, d);
  if (d.kind === 'Deployment') {
    const now = await findDeployment(ctx, project, d.name);
    if (!now) {
      const body = { project, name: d.name, ...deploymentBody(d) };
      const would = await ctx.client.post<Deployment>('/v1/deployments?dryRun=true', body);
      return { doc: d, kind: 'Deployment', action: 'create', would };
    }
    const would = await ctx.client.put<Deployment>(`/v1/deployments/${enc(now.id)}?dryRun=true`, deploymentBody(d));
    return {
      doc: d,
      kind: 'Deployment',
      action: would.generation === now.generation ? 'unchanged' : 'update',
      now,
      would,
    };
  }
  const now = await findInstance(ctx, project, d.name);
  if (now?.desiredState === 'deleted')
    throw new LocatedError([
      { where: d.where, message: `${ref(d)} is being deleted (${now.state}); apply again once it is gone` },
    ]);
  if (!now) {
    const would = await ctx.client.post<Instance>('/v1/instances?dryRun=true', instanceBody(ctx, d));
    return { doc: d, kind: 'Instance', action: 'create', would };
  }
  const { givenDiffers } = await import('./spec-file.ts');
  const given = { ...d.spec, ...(d.labels ? { labels: d.labels } : {}) };
  return { doc: d, kind: 'Instance', action: 'unchanged', now, differs: givenDiffers(given, now, 'spec') };
}

/** The fields a deployment's diff compares, in the document's shape. */
const asDocument = (x: Deployment) => ({
  metadata: { labels: x.labels },
  spec: {
    replicas: x.replicas,
    template: x.template,
    priority: x.priority,
    strategy: x.strategy,
    paused: x.paused,
  },
});

/**
 * Waits until `done` holds, looking again whenever the project's event stream
 * reports something; fails after `seconds`.
 */
async function waitFor(ctx: Ctx, project: string, what: string, seconds: number, done: () => Promise<boolean>) {
  const abort = new AbortController();
  let ok = false;
  let checking = false;
  let again = false;
  const check = async () => {
    if (checking) {
      again = true;
      return;
    }
    checking = true;
    try {
      do {
        again = false;
        if (await done()) {
          ok = true;
          abort.abort();
        }
      } while (again && !ok);
    } finally {
      checking = false;
    }
  };
  const timer = setTimeout(() => abort.abort(), seconds * 1000);
  // Most changes come with an event; a status the controller writes quietly is seen at the next tick.
  const tick = setInterval(() => void check(), 2000);
  try {
    await ctx.client.follow({ project }, { onOpen: () => void check(), onEvent: () => void check() }, abort.signal);
  } finally {
    clearTimeout(timer);
    clearInterval(tick);
  }
  if (!ok) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
}

interface FileFlags {
  filename?: string[];
}

const fileOption = (cmd: Command) => cmd.requiredOption('-f, --filename <file>', FILE_HELP, collect);

export function applyCommand(): Command {
  return fileOption(leaf('apply', 'create or update what a spec file describes: deployments and bare instances'))
    .option('--wait', 'wait until every deployment applied has all its replicas of its revision available')
    .option('--timeout <seconds>', 'with --wait: give up after this long (default 300)', (v: string) => Number(v))
    .addHelpText(
      'after',
      `\nEvery document is checked with the server first; if one is refused, nothing changes and each\nproblem is shown at its line in the file. Applying the same file again changes nothing.\nA bare instance is not changed in place: delete it first, or make it a Deployment.\n${EXAMPLE}\n\nExamples:\n  strata apply -f web.yaml\n  strata diff -f web.yaml && strata apply -f web.yaml --wait`,
    )
    .action(async (o: FileFlags & { wait?: boolean; timeout?: number }, c: Command) => {
      const ctx = ctxOf(c);
      const docs = await readDocs(o.filename);
      const steps = await eachDoc(docs, d => plan(ctx, d));
      const changing = steps.flatMap(s =>
        s.kind === 'Instance' && s.action === 'unchanged' && s.differs.length > 0
          ? [
              {
                where: s.doc.where,
                message: `${ref(s.doc)} exists with another spec (${s.differs.join('; ')}); an instance is not changed in place: delete it (strata delete -f) and apply again, or make it a Deployment`,
              },
            ]
          : [],
      );
      if (changing.length > 0) throw new LocatedError(changing);
      const results: unknown[] = [];
      const applied: Deployment[] = [];
      await eachDoc(docs, async d => {
        const s = steps[docs.indexOf(d)]!;
        const project = projectOf(ctx, d);
        let said: string = s.action === 'update' ? 'configured' : s.action === 'create' ? 'created' : 'unchanged';
        let result: unknown = s.action === 'unchanged' ? s.now : undefined;
        if (s.kind === 'Deployment' && s.action === 'create')
          result = await ctx.client.post<Deployment>('/v1/deployments', {
            project,
            name: d.name,
            ...deploymentBody(d),
          });
        else if (s.kind === 'Deployment' && s.action === 'update') {
          const now = await ctx.client.put<Deployment>(`/v1/deployments/${enc(s.now.id)}`, deploymentBody(d));
          if (now.generation === s.now.generation) said = 'unchanged';
          result = now;
        } else if (s.kind === 'Instance' && s.action === 'create')
          result = await ctx.client.post<Instance>('/v1/instances', instanceBody(ctx, d));
        if (s.kind === 'Deployment') applied.push(result as Deployment);
        results.push(result);
        if (ctx.format === 'table') out(`${ref(d)} ${said}${d.project ? ` (project ${d.project})` : ''}`);
      });
      if (ctx.format !== 'table') out(await serialize(results, ctx.format));
      if (o.wait)
        for (const dep of applied)
          await waitFor(ctx, dep.project, `deployment ${dep.name}`, o.timeout ?? 300, async () => {
            const now = await ctx.client.get<DeploymentDetail>(`/v1/deployments/${enc(dep.id)}`);
            return now.status.observedGeneration >= now.generation && now.status.phase === 'complete';
          });
    });
}

export function diffCommand(): Command {
  return fileOption(leaf('diff', 'show what `strata apply` would change: each field, old → new'))
    .addHelpText(
      'after',
      '\nNothing is changed. The server checks each document as apply would (a dry run), so a refusal\nis shown here too, at its line.\n\nExample:\n  strata diff -f web.yaml',
    )
    .action(async (o: FileFlags, c: Command) => {
      const ctx = ctxOf(c);
      const docs = await readDocs(o.filename);
      const steps = await eachDoc(docs, d => plan(ctx, d));
      const { diffLines } = await import('./spec-file.ts');
      const report = steps.map(s => {
        const head = `${ref(s.doc)}${s.doc.project ? ` (project ${s.doc.project})` : ''}`;
        if (s.action === 'create') return { ref: ref(s.doc), action: 'create', changes: [] as string[], head };
        const changes = s.kind === 'Deployment' ? diffLines(asDocument(s.now), asDocument(s.would), '') : s.differs;
        const notes: string[] = [];
        if (s.kind === 'Deployment' && s.action === 'update' && s.would.revision !== s.now.revision)
          notes.push(
            `(revision ${s.would.revision}: the replicas are replaced, at most maxSurge extra and maxUnavailable missing at a time)`,
          );
        if (s.kind === 'Instance' && changes.length > 0)
          notes.push('(an instance is not changed in place: apply refuses this; delete it first)');
        return {
          ref: ref(s.doc),
          action: changes.length > 0 ? 'change' : 'none',
          changes: [...changes, ...notes],
          head,
        };
      });
      if (ctx.format !== 'table') {
        out(
          await serialize(
            report.map(({ head: _h, ...r }) => r),
            ctx.format,
          ),
        );
        return;
      }
      for (const r of report) {
        if (r.action === 'create') out(`${r.head}: would be created`);
        else if (r.action === 'none') out(`${r.head}: no changes`);
        else out([`${r.head}:`, ...r.changes.map(l => `  ${l}`)].join('\n'));
      }
    });
}

export function deleteCommand(): Command {
  return fileOption(leaf('delete', 'delete what a spec file describes (deployments with their replicas, instances)'))
    .option('--ignore-not-found', 'say nothing of what is already gone')
    .option('--wait', 'wait until the replicas and instances are gone from their hosts')
    .option('--timeout <seconds>', 'with --wait: give up after this long (default 300)', (v: string) => Number(v))
    .addHelpText('after', '\nExample:\n  strata delete -f web.yaml --wait')
    .action(async (o: FileFlags & { ignoreNotFound?: boolean; wait?: boolean; timeout?: number }, c: Command) => {
      const ctx = ctxOf(c);
      const docs = await readDocs(o.filename);
      const going: { project: string; id: string }[] = [];
      const results: unknown[] = [];
      await eachDoc(docs, async d => {
        const project = projectOf(ctx, d);
        if (d.kind === 'Deployment') {
          const found = await findDeployment(ctx, project, d.name);
          if (!found) return gone(d);
          const detail = await ctx.client.get<DeploymentDetail>(`/v1/deployments/${enc(found.id)}`);
          results.push(await ctx.client.delete<Deployment>(`/v1/deployments/${enc(found.id)}`));
          going.push(...detail.instances.map(i => ({ project, id: i.id })));
          const n = detail.instances.filter(i => i.desiredState !== 'deleted').length;
          if (ctx.format === 'table') out(`${ref(d)} deleted; ${n} replica${n === 1 ? '' : 's'} going`);
        } else {
          const found = await findInstance(ctx, project, d.name);
          if (!found || found.desiredState === 'deleted') return gone(d);
          results.push((await ctx.client.delete<Instance | null>(`/v1/instances/${enc(found.id)}`)) ?? found);
          going.push({ project, id: found.id });
          if (ctx.format === 'table') out(`${ref(d)} deleted`);
        }
      });
      if (ctx.format !== 'table') out(await serialize(results, ctx.format));
      if (o.wait)
        for (const project of new Set(going.map(g => g.project)))
          await waitFor(ctx, project, 'the deleted instances to be gone', o.timeout ?? 300, async () => {
            for (const g of going.filter(x => x.project === project)) {
              try {
                await ctx.client.get(`/v1/instances/${enc(g.id)}`);
                return false;
              } catch (err) {
                if (!(err instanceof ApiError) || err.status !== 404) throw err;
              }
            }
            return true;
          });

      function gone(d: SpecDoc): void {
        if (o.ignoreNotFound) return;
        throw new LocatedError([{ where: d.where, message: `${ref(d)} not found in project ${projectOf(ctx, d)}` }]);
      }
    });
}
