// What route handlers are given besides the store: the services and the hubs
// that reach agents.
import type { AgentHub } from '../services/agent-hub.ts';
import type { InstanceService } from '../services/instances.ts';
import type { NodeService } from '../services/nodes.ts';
import type { SecretBox } from '../services/secret-box.ts';
import type { StreamHub } from './stream-hub.ts';

export interface Services {
  instances: InstanceService;
  nodes: NodeService;
  agents: AgentHub;
  streams: StreamHub;
  secrets: SecretBox;
  heartbeatSeconds: number;
}
