// Who hears of committed events. In process today; servers sharing one
// PostgreSQL would need one that crosses processes (LISTEN/NOTIFY).
import { EventEmitter } from 'node:events';
import type { EventListener, StoredEvent } from './store.ts';

export interface EventBus {
  publish(rows: readonly StoredEvent[]): void;
  subscribe(listener: EventListener): () => void;
}

export class InProcessEventBus implements EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  publish(rows: readonly StoredEvent[]): void {
    for (const row of rows) this.emitter.emit('event', row);
  }

  subscribe(listener: EventListener): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }
}
