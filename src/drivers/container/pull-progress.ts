// A one-line summary of a Docker API pull stream, which reports per layer:
// {"status":"Downloading","progressDetail":{"current":N,"total":M},"id":"layer"}.
export interface PullEvent {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
}

const DONE = /^(Already exists|Download complete|Pull complete|Verifying Checksum)$/i;

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

export class PullProgress {
  private readonly layers = new Map<string, { done: boolean; current: number; total: number }>();
  private last = '';

  add(e: PullEvent): void {
    if (e.status) this.last = e.status;
    // "Pulling from REPO" carries the tag as its id: not a layer.
    if (!e.id || !e.status || /^Pulling from /.test(e.status)) return;
    const l = this.layers.get(e.id) ?? { done: false, current: 0, total: 0 };
    if (DONE.test(e.status)) l.done = true;
    if (e.progressDetail?.total) {
      l.current = e.progressDetail.current ?? l.current;
      l.total = e.progressDetail.total;
    }
    this.layers.set(e.id, l);
  }

  summary(): string {
    const all = [...this.layers.values()];
    if (all.length === 0) return this.last;
    const done = all.filter(l => l.done).length;
    const current = all.reduce((s, l) => s + (l.done ? l.total : l.current), 0);
    const total = all.reduce((s, l) => s + l.total, 0);
    const bytes = total > 0 ? `, ${mb(current)} of ${mb(total)}` : '';
    return `${done}/${all.length} layers${bytes}`;
  }
}
