// The nodes controller: bare-metal nodes never wait forever. Its rules:
// - A node whose instance was deleted is undeployed (then cleaned) by its
//   conductor: the controller moves it to `undeploying` at once.
// - A step past its deadline, plus a grace for a conductor's report in
//   flight, fails as timed out: a node that never calls back, or a conductor
//   that is gone. A deploy that times out fails its instance too.
import type { NodeService } from '../services/nodes.ts';
import type { Controller } from './runner.ts';

export interface NodesControllerOptions {
  resyncMs?: number;
  /** Seconds past a step's deadline before the controller fails it (the conductor times out first). */
  graceSeconds?: number;
}

export function nodesController(nodes: NodeService, o: NodesControllerOptions = {}): Controller {
  return {
    name: 'nodes',
    wakeOn: ['instance.deleted'],
    resyncMs: o.resyncMs ?? 2000,
    async reconcile() {
      await nodes.releaseGone();
      await nodes.expireOverdue(o.graceSeconds ?? 15);
    },
  };
}
