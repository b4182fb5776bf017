// Preemption on the control plane: the placer's search for room (victims
// chosen by the pure scheduler, src/scheduler/preemption.ts), the marking of
// victims, and their release once their agent has stopped them. The rules:
// - Only a pending instance that fits on no host preempts, and only
//   instances of strictly lower priority that hold capacity where it could
//   go (src/store/preemption.ts says which may be preempted).
// - No overcommit: victims are only marked (desired `stopped`, who preempted
//   them recorded, their agent woken by `instance.preempted`); they keep their
//   host until their agent reports them stopped. Then, in that report's
//   write, they go back to `pending` (host released, desired `running` again)
//   at their own priority, and the placer is woken.
// - Meanwhile the preemptor stays pending, `waiting for N preempted
//   instances to stop`, preempting nothing more, and in every pass what is
//   free on the victims' host is held back for it (up to what it asks for),
//   so no instance after it in the queue takes the room being made. Once the
//   victims are gone it is placed like any pending instance, first in queue
//   order among those that want that room.
// - A preemptor deleted, or placed elsewhere, meanwhile leaves its victims to
//   stop and be placed again like any pending instance: none is left stuck.
//   A victim lost with its host no longer counts as under way.
// - A user's start, stop or pause of a victim cancels what preemption asked
//   of it: it is then an ordinary instance again.
// - The preemptor is named in the victim's message and event only within its
//   own project; to another project it is an instance of another project, of
//   such a priority.
import { now } from '../lib/time.ts';
import { type Candidate, choosePreemption } from '../scheduler/preemption.ts';
import type { Request } from '../scheduler/scheduler.ts';
import { findKind } from '../kinds/index.ts';
import { updateInstance } from '../store/instances.ts';
import { type PreemptibleRow, preemptible, preemptionsUnderWay } from '../store/preemption.ts';
import type { InstanceRow, InstanceTable } from '../store/schema.ts';
import type { Trx, WriteContext } from '../store/store.ts';
import type { Snapshot } from './placement.ts';

/** How a preemptor's message starts while its victims stop. */
const PREEMPTING = 'waiting for ';

const stopping = (n: number) => `${PREEMPTING}${n} preempted ${n === 1 ? 'instance' : 'instances'} to stop`;

/** What a victim's message says of its preemptor: its name only to its own project. */
export function preemptionNote(
  preemptor: Pick<InstanceRow, 'name' | 'priority' | 'project_id'>,
  projectId: string,
): string {
  return preemptor.project_id === projectId
    ? `preempted by instance ${preemptor.name} (priority ${preemptor.priority})`
    : `preempted by an instance of another project (priority ${preemptor.priority})`;
}

/** A victim as the scheduler weighs it: what it holds on its host (memory with its kind's overhead). */
function candidateOf(r: PreemptibleRow): Candidate {
  return {
    id: r.id,
    hostId: r.host_id!,
    priority: r.priority,
    vcpus: r.vcpus,
    memoryMib: r.memory_mib + (findKind(r.kind)?.hostMemoryOverheadMib ?? 0),
    diskGib: r.disk_gib,
    groups: r.groups,
    createdAt: r.created_at,
  };
}

/**
 * One placer pass's preemptions: what may be preempted and what is under
 * way are read once, when the first instance fits nowhere, inside the pass's
 * transaction; room held back for preemptors is applied again to a snapshot
 * read afresh.
 */
export class PreemptionPass {
  private readonly trx: Trx;
  private candidates: Map<string, PreemptibleRow> | undefined;
  private loadedBelow = -Infinity;
  /** preemptor id -> its victims still on their host */
  private underWay: Map<string, { id: string; hostId: string }[]> | undefined;
  private readonly held: { hostId: string; request: Request }[] = [];
  /** victims marked in this pass */
  private readonly marked = new Set<string>();
  /**
   * Requests preemption could not help in this pass, with the highest
   * priority that tried: one alike of no higher priority (the replicas of a
   * deployment) would find no more, as candidates and room only shrink
   * during a pass.
   */
  private readonly hopeless = new Map<string, number>();

  constructor(trx: Trx) {
    this.trx = trx;
  }

  /** Whether this pass held room back or preempted: the snapshot it used is then not to be reused. */
  get touched(): boolean {
    return this.held.length > 0;
  }

  /** A snapshot read afresh during the pass holds back again what the pass has held back so far. */
  reapply(snap: Snapshot): void {
    for (const h of this.held) snap.scheduler.reserve(h.hostId, h.request);
  }

  /**
   * For a pending instance that fits on no host: waits for its victims still
   * stopping, or preempts instances of lower priority to make room. True when
   * it waits on preemption (its message and the victims written); false when
   * preemption cannot help it.
   */
  async tryFor(ctx: WriteContext, inst: InstanceRow, request: Request, snap: Snapshot): Promise<boolean> {
    const mine = (await this.inFlight()).get(inst.id);
    if (mine && mine.length > 0) {
      this.hold(snap, mine[0]!.hostId, request);
      await this.say(ctx, inst, stopping(mine.length));
      return true;
    }
    if (request.whole) return false;
    const key = JSON.stringify(request);
    if ((this.hopeless.get(key) ?? -Infinity) >= inst.priority) return false;
    const rows = await this.preemptible(inst.priority);
    const cands: Candidate[] = [];
    for (const r of rows.values()) if (r.priority < inst.priority) cands.push(candidateOf(r));
    const choice = cands.length > 0 ? choosePreemption(snap.scheduler, request, inst.priority, cands) : null;
    if (!choice) {
      this.hopeless.set(key, Math.max(inst.priority, this.hopeless.get(key) ?? -Infinity));
      return false;
    }
    const victims = choice.victims.map(id => rows.get(id)!);
    await this.mark(ctx, inst, choice.hostId, victims);
    this.underWay!.set(
      inst.id,
      victims.map(v => ({ id: v.id, hostId: choice.hostId })),
    );
    for (const v of victims) rows.delete(v.id);
    this.hold(snap, choice.hostId, request);
    await this.say(ctx, inst, stopping(victims.length));
    return true;
  }

  private hold(snap: Snapshot, hostId: string, request: Request): void {
    snap.scheduler.reserve(hostId, request);
    this.held.push({ hostId, request });
  }

  private async say({ trx }: WriteContext, inst: InstanceRow, message: string): Promise<void> {
    if (inst.message !== message) await updateInstance(trx, inst.id, { message, updated_at: now() });
  }

  private async inFlight(): Promise<Map<string, { id: string; hostId: string }[]>> {
    if (this.underWay) return this.underWay;
    this.underWay = new Map();
    for (const v of await preemptionsUnderWay(this.trx)) {
      const list = this.underWay.get(v.preempted_by!) ?? [];
      this.underWay.set(v.preempted_by!, list);
      list.push({ id: v.id, hostId: v.host_id! });
    }
    return this.underWay;
  }

  /**
   * Candidates below `priority`, read once per pass: pending instances come
   * in queue order, so the first to preempt has the highest priority. Victims
   * marked in this pass are candidates no more.
   */
  private async preemptible(priority: number): Promise<Map<string, PreemptibleRow>> {
    if (!this.candidates || priority > this.loadedBelow) {
      this.candidates = new Map((await preemptible(this.trx, priority)).map(r => [r.id, r]));
      for (const id of this.marked) this.candidates.delete(id);
      this.loadedBelow = priority;
    }
    return this.candidates;
  }

  /** Marks the victims: their agent stops them; the preemptor says whom it preempts. */
  private async mark(
    ctx: WriteContext,
    preemptor: InstanceRow,
    hostId: string,
    victims: PreemptibleRow[],
  ): Promise<void> {
    const t = now();
    for (const v of victims) {
      this.marked.add(v.id);
      const message = preemptionNote(preemptor, v.project_id);
      const update: Partial<InstanceTable> = {
        desired_state: 'stopped',
        preempted_by: preemptor.id,
        preemption: message,
        message,
        updated_at: t,
      };
      await updateInstance(ctx.trx, v.id, update);
      const sameProject = v.project_id === preemptor.project_id;
      ctx.emit({
        type: 'instance.preempted',
        projectId: v.project_id,
        resourceType: 'instance',
        resourceId: v.id,
        actor: 'scheduler',
        host: hostId,
        data: {
          instance: v.name,
          by: sameProject ? preemptor.name : null,
          byPriority: preemptor.priority,
          sameProject,
          hostId,
          message,
        },
      });
    }
    const own = victims.filter(v => v.project_id === preemptor.project_id);
    ctx.emit({
      type: 'instance.preempting',
      projectId: preemptor.project_id,
      resourceType: 'instance',
      resourceId: preemptor.id,
      actor: 'scheduler',
      data: { hostId, victims: own.map(v => v.name), otherProjects: victims.length - own.length },
    });
  }
}

/**
 * In an agent's report that a preempted instance has stopped (or failed
 * while stopping): the instance leaves its host and goes back to `pending`,
 * to run again at its own priority where there is room. Answers the update
 * to write with the report's, or undefined when the instance was not preempted.
 */
export function releaseOf(row: InstanceRow, reported: string): Partial<InstanceTable> | undefined {
  if (row.preempted_by === null || row.desired_state !== 'stopped') return undefined;
  if (reported !== 'stopped' && reported !== 'failed') return undefined;
  return {
    state: 'pending',
    host_id: null,
    desired_state: 'running',
    message: row.preemption || 'preempted',
    restart_requested_at: null,
  };
}
