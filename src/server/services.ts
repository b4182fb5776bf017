import type { AgentHub } from './agent-hub.ts';
import type { InstanceService } from './instances.ts';
import type { Placer } from './placer.ts';
import type { SecretBox } from './secret-box.ts';
import type { StreamHub } from './stream-hub.ts';

export interface Services {
  instances: InstanceService;
  agents: AgentHub;
  placer: Placer;
  streams: StreamHub;
  secrets: SecretBox;
  heartbeatSeconds: number;
}
