// `strata rollout ...`: follow, pause, resume, promote and undo a deployment's
// rollouts. `status` follows the current revision until it is complete (exit
// 0), has failed or was rolled back (exit 1): usable in scripts. On a terminal
// it draws a progress bar; otherwise it prints a line whenever the state changes.
import type { Command } from 'commander';
import { type Deployment, enc, type Revision } from './client.ts';
import { ctxOf, type Ctx, group, intArg, leaf } from './common.ts';
import { deploymentId } from './deployments.ts';
import { age, col, out, renderList, renderObject } from './output.ts';
import { exitOnInterrupt } from './watch.ts';

export type Outcome = 'complete' | 'failed' | 'rolled-back';

/** How the rollout of `revision` ended, or undefined while it goes on. */
export function outcomeOf(d: Deployment, revision: number): Outcome | undefined {
  if (d.revision !== revision) return d.status.rolledBackFrom === revision ? 'rolled-back' : undefined;
  if (d.status.observedGeneration < d.generation) return undefined;
  if (d.status.phase === 'complete') return 'complete';
  if (d.status.phase === 'failed') return 'failed';
  return undefined;
}

const BAR = 30;

/** One line of progress: the replicas of the revision available out of those wanted. */
export function progressText(d: Deployment, bar: boolean): string {
  const s = d.status;
  const done = d.replicas === 0 ? 1 : Math.min(1, Math.min(s.updatedReplicas, s.availableReplicas) / d.replicas);
  const filled = Math.round(done * BAR);
  const head = bar ? `[${'#'.repeat(filled)}${'.'.repeat(BAR - filled)}] ` : '';
  const counts = `revision ${d.revision}: ${s.updatedReplicas} of ${d.replicas} updated, ${s.availableReplicas} available, ${s.replicas} live`;
  return `${head}${counts} (${s.phase})${s.message ? `: ${s.message}` : ''}`;
}

async function follow(ctx: Ctx, id: string, timeoutSeconds: number | undefined): Promise<Outcome | 'timeout'> {
  exitOnInterrupt();
  const tty = process.stdout.isTTY === true;
  const get = () => ctx.client.get<Deployment>(`/v1/deployments/${enc(id)}`);
  let d = await get();
  let revision = d.revision;
  let last = '';
  const stream = new AbortController();
  let wake: (() => void) | undefined;
  // Each event of the project may move the rollout: look again then (or every few seconds, should the stream drop).
  const events = ctx.client
    .follow({ project: d.project }, { onEvent: () => wake?.() }, stream.signal)
    .catch(() => undefined);
  const deadline = timeoutSeconds === undefined ? undefined : Date.now() + timeoutSeconds * 1000;
  try {
    for (;;) {
      if (d.revision !== revision && d.status.rolledBackFrom !== revision) {
        out(`${tty ? '\n' : ''}revision ${d.revision} replaced revision ${revision}: following it`);
        revision = d.revision;
      }
      const text = progressText(d, tty);
      if (text !== last) {
        if (tty) process.stdout.write(`\r\x1b[2K${text}`);
        else out(text);
        last = text;
      }
      const outcome = outcomeOf(d, revision);
      if (outcome) {
        if (tty) process.stdout.write('\n');
        return outcome;
      }
      if (deadline !== undefined && Date.now() >= deadline) {
        if (tty) process.stdout.write('\n');
        return 'timeout';
      }
      await new Promise<void>(resolve => {
        const t = setTimeout(resolve, 2000);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = undefined;
      d = await get();
    }
  } finally {
    stream.abort();
    await events;
  }
}

const verdicts: Record<Outcome | 'timeout', string> = {
  complete: 'is complete',
  failed: 'has failed',
  'rolled-back': 'missed its deadline and was rolled back',
  timeout: 'is still going on (timed out)',
};

/** Posts an action on a deployment and says what it did. */
async function act(c: Command, ref: string, action: string, body: unknown, said: (d: Deployment) => string) {
  const ctx = ctxOf(c);
  const id = await deploymentId(ctx, ref);
  const d = await ctx.client.post<Deployment>(`/v1/deployments/${enc(id)}/${action}`, body);
  out(ctx.format === 'table' ? said(d) : await renderObject(d, [], ctx.format));
}

export function rolloutCommand(): Command {
  const cmd = group(
    'rollout',
    "follow and steer a deployment's rollouts: status, history, undo, pause, resume, promote",
  );
  const ref = ['<deployment>', 'deployment name (in the current project) or id'] as const;

  cmd.addCommand(
    leaf('status', 'follow the current rollout until it is complete (exit 0), has failed or was rolled back (exit 1)')
      .argument(...ref)
      .option('--timeout <seconds>', 'give up after this long (exit 2)', intArg(1))
      .addHelpText('after', '\nExample:\n  strata apply -f web.yaml && strata rollout status web')
      .action(async (r: string, o: { timeout?: number }, c: Command) => {
        const ctx = ctxOf(c);
        const id = await deploymentId(ctx, r);
        const outcome = await follow(ctx, id, o.timeout);
        const d = await ctx.client.get<Deployment>(`/v1/deployments/${enc(id)}`);
        const revision = outcome === 'rolled-back' ? (d.status.rolledBackFrom ?? d.revision) : d.revision;
        out(`deployment ${d.name}: the rollout of revision ${revision} ${verdicts[outcome]}`);
        process.exitCode = outcome === 'complete' ? 0 : outcome === 'timeout' ? 2 : 1;
      }),
  );

  cmd.addCommand(
    leaf('history', "list a deployment's revisions, newest first, and where each came from")
      .argument(...ref)
      .action(async (r: string, _o: unknown, c: Command) => {
        const ctx = ctxOf(c);
        const id = await deploymentId(ctx, r);
        const page = await ctx.client.list<Revision>(`/v1/deployments/${enc(id)}/revisions`, {}, true);
        const origin = (v: Revision) =>
          v.rolledBackFrom !== null
            ? `rollback of ${v.rolledBackFrom} to ${v.copiedFrom}`
            : v.copiedFrom !== null
              ? `undo to ${v.copiedFrom}`
              : '';
        out(
          await renderList(
            page.items,
            [
              col('REVISION', v => v.revision),
              col('IMAGE', v => v.template.image),
              col('COMPLETED', v => (v.completedAt ? age(v.completedAt) : 'no')),
              col('ORIGIN', origin),
              col('CREATED', v => age(v.createdAt)),
            ],
            ctx.format,
          ),
        );
      }),
  );

  cmd.addCommand(
    leaf('undo', 'go back to an earlier revision (default: the one before): a new revision copies its template')
      .argument(...ref)
      .option('--to-revision <n>', 'the revision to go back to', intArg(1))
      .action((r: string, o: { toRevision?: number }, c: Command) =>
        act(
          c,
          r,
          'rollback',
          o.toRevision === undefined ? {} : { toRevision: o.toRevision },
          d => `deployment ${d.name} rolled back: revision ${d.revision} runs the template of an earlier one`,
        ),
      ),
  );

  for (const [name, description] of [
    ['pause', 'pause rollouts: old replicas are no longer replaced (scaling and failed replicas still are)'],
    ['resume', 'resume rollouts; the progress deadline counts from now'],
    ['promote', "promote a rollout's canaries: the rest of the replicas roll out"],
  ] as const)
    cmd.addCommand(
      leaf(name, description)
        .argument(...ref)
        .action((r: string, _o: unknown, c: Command) =>
          act(
            c,
            r,
            name,
            undefined,
            d => `deployment ${d.name}: ${name === 'promote' ? `revision ${d.revision} promoted` : `${name}d`}`,
          ),
        ),
    );
  return cmd;
}
