// The exits of a runtime's containers, from one event stream for all of them.
// Podman answers the Docker API's per-container wait by checking the container
// again and again (each check asks the OCI runtime): fifty waiting containers
// kept its service at 111% CPU on an otherwise idle two-core host, and every
// start and stop queued behind that. One `GET /events` stream costs nothing
// while nothing happens; a container's `die` event is looked up once.
//
// No exit is missed: each wait looks at its container once the stream is open
// (an exit before that has no event here), a stream that ends is opened again
// and every waited container looked at, and a sweep every `sweepMs` looks at
// them all in one list call, in case an event never came.
import type Docker from 'dockerode';

interface Waiter {
  resolve: (code: number) => void;
}

type EventStream = NodeJS.ReadableStream & { destroy(): void; socket?: { unref(): void } };

/** What a container found gone (removed while waited on) exited with: a forced removal's SIGKILL. */
const GONE_EXIT_CODE = 137;

export class ExitWatch {
  private readonly docker: Docker;
  private readonly sweepMs: number;
  /** Container id -> whoever waits for its exit. */
  private readonly waiters = new Map<string, Set<Waiter>>();
  private stream: EventStream | undefined;
  private opening: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;

  constructor(docker: Docker, o: { sweepMs?: number } = {}) {
    this.docker = docker;
    this.sweepMs = o.sweepMs ?? 30_000;
  }

  /** The exit code of the container once it no longer runs (at once if it does not now). */
  wait(containerId: string): Promise<number> {
    const done = new Promise<number>(resolve => {
      const set = this.waiters.get(containerId) ?? new Set<Waiter>();
      set.add({ resolve });
      this.waiters.set(containerId, set);
    });
    this.sweepSoon();
    void this.open().then(
      () => this.look(containerId),
      // The stream is retried; the look happens when it opens.
      () => undefined,
    );
    return done;
  }

  /** Stops watching: the stream is closed and no more looks are taken (waiters stay unresolved). */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.sweepTimer);
    this.stream?.destroy();
    this.stream = undefined;
  }

  get watching(): number {
    return this.waiters.size;
  }

  private open(): Promise<void> {
    if (this.stream) return Promise.resolve();
    if (this.opening) return this.opening;
    const opening = (async () => {
      const stream = (await this.docker.getEvents({ filters: { type: ['container'] } })) as EventStream;
      if (this.closed || this.waiters.size === 0) {
        stream.destroy();
        return;
      }
      this.failures = 0;
      this.stream = stream;
      // The agent's exit does not wait for this stream.
      stream.socket?.unref();
      let buffered = '';
      stream.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        // Podman and Docker send one JSON object a line.
        for (const line of lines) if (line.trim()) this.onEvent(line);
        if (buffered.length > 1 << 20) buffered = '';
      });
      const ended = () => {
        if (this.stream !== stream) return;
        this.stream = undefined;
        this.reopenLater();
      };
      stream.on('end', ended);
      stream.on('close', ended);
      stream.on('error', ended);
    })();
    this.opening = opening;
    opening.then(
      () => {
        this.opening = undefined;
      },
      () => {
        this.opening = undefined;
        this.reopenLater();
      },
    );
    return opening;
  }

  /** After 1, 2, 4 ... at most 10 s, while anyone waits; then every waited container is looked at. */
  private reopenLater(): void {
    if (this.closed || this.waiters.size === 0 || this.retryTimer) return;
    const delay = Math.min(1000 * 2 ** this.failures++, 10_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.open().then(
        () => this.lookAll(),
        () => undefined,
      );
    }, delay);
    this.retryTimer.unref();
  }

  private onEvent(line: string): void {
    let e: { Type?: string; Action?: string; status?: string; id?: string; Actor?: { ID?: string } };
    try {
      e = JSON.parse(line);
    } catch {
      return;
    }
    const id = e.Actor?.ID ?? e.id;
    const action = e.Action ?? e.status;
    if (!id || !this.waiters.has(id)) return;
    // Podman says remove, Docker destroy.
    if (action === 'die' || action === 'died' || action === 'remove' || action === 'destroy') void this.look(id, 5);
  }

  /**
   * Inspects one waited container: resolves its waiters once it no longer
   * runs. After its die event, one still shown running (the event ahead of
   * the state) is looked at again, `again` more times, 200 ms apart.
   */
  private async look(containerId: string, again = 0): Promise<void> {
    if (!this.waiters.has(containerId) || this.closed) return;
    let code: number | undefined;
    try {
      const info = await this.docker.getContainer(containerId).inspect();
      if (info.State.Running || info.State.Restarting) {
        if (again > 0) setTimeout(() => void this.look(containerId, again - 1), 200).unref();
        return;
      }
      code = info.State.ExitCode;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) return;
      code = GONE_EXIT_CODE;
    }
    this.settle(containerId, code);
  }

  private settle(containerId: string, code: number): void {
    const set = this.waiters.get(containerId);
    if (!set) return;
    this.waiters.delete(containerId);
    for (const w of set) w.resolve(code);
    if (this.waiters.size === 0) this.idle();
  }

  /** No one waits: the stream and the sweep stop until someone does. */
  private idle(): void {
    clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.stream?.destroy();
    this.stream = undefined;
  }

  private async lookAll(): Promise<void> {
    await Promise.all([...this.waiters.keys()].map(id => this.look(id)));
  }

  private sweepSoon(): void {
    if (this.sweepTimer || this.closed) return;
    this.sweepTimer = setTimeout(() => void this.sweep(), this.sweepMs);
    this.sweepTimer.unref();
  }

  /** One list call for every waited container; the ones not running are looked at. */
  private async sweep(): Promise<void> {
    this.sweepTimer = undefined;
    if (this.closed || this.waiters.size === 0) return;
    try {
      const ids = [...this.waiters.keys()];
      const list = await this.docker.listContainers({ all: true, filters: { id: ids } });
      const running = new Set(list.filter(c => c.State === 'running' || c.State === 'paused').map(c => c.Id));
      await Promise.all(ids.filter(id => !running.has(id)).map(id => this.look(id)));
    } catch {
      // The runtime does not answer: the next sweep tries again.
    }
    if (this.waiters.size > 0) this.sweepSoon();
  }
}
