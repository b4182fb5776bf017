import type { AgentHub } from './agent-hub.ts';
import type { InstanceService } from './instances.ts';
import type { Placer } from './placer.ts';

export interface Services {
  instances: InstanceService;
  agents: AgentHub;
  placer: Placer;
  heartbeatSeconds: number;
}
