// Row types of the state store. Columns are dialect-neutral: integers for flags,
// ISO-8601 text for times, JSON text for structured values.
import type { Generated, Insertable, Selectable, Updateable } from 'kysely';

export interface ProjectTable {
  id: string;
  name: string;
  description: string;
  labels: string;
  quota_instances: number | null;
  quota_vcpus: number | null;
  quota_memory_mib: number | null;
  quota_disk_gib: number | null;
  used_instances: number;
  used_vcpus: number;
  used_memory_mib: number;
  used_disk_gib: number;
  created_at: string;
  updated_at: string;
  /** binpack | spread: how the scheduler scores hosts for this project's instances */
  placement_strategy: string;
}

export interface UserTable {
  id: string;
  name: string;
  cluster_admin: number;
  created_at: string;
}

export interface MembershipTable {
  project_id: string;
  user_id: string;
  role: string;
  created_at: string;
}

export interface TokenTable {
  id: string;
  name: string;
  /** sha256 of the secret, hex; the secret itself is never stored. */
  hash: string;
  user_id: string | null;
  host_id: string | null;
  created_at: string;
  expires_at: string | null;
}

export interface JoinTokenTable {
  id: string;
  hash: string;
  description: string;
  pool: string | null;
  created_at: string;
  expires_at: string | null;
}

export interface HostTable {
  id: string;
  name: string;
  kind: string;
  parent_instance_id: string | null;
  region: string;
  zone: string;
  rack: string;
  labels: string;
  capacity_vcpus: number;
  capacity_memory_mib: number;
  capacity_disk_gib: number;
  allocatable_vcpus: number;
  allocatable_memory_mib: number;
  allocatable_disk_gib: number;
  drivers: string;
  state: string;
  pool: string | null;
  info: string;
  last_heartbeat_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface InstanceTable {
  id: string;
  project_id: string;
  name: string;
  kind: string;
  image: string;
  command: string;
  args: string;
  env: string;
  vcpus: number;
  memory_mib: number;
  disk_gib: number;
  labels: string;
  constraints: string;
  restart_policy: string;
  restarts: number;
  /** JSON: workingDir, user, ports, readOnlyRootfs, tmpfs, healthCheck */
  options: string;
  pids_limit: number;
  /** Placement order among pending instances: higher first. */
  priority: number;
  /** 1: wait in pending when no host can take it; 0: fail at once. */
  wait_for_capacity: number;
  /** JSON: what the agent last observed (address, published ports, health) */
  observed: string;
  /** A user asked for a restart of the running instance; cleared when its agent starts it again. */
  restart_requested_at: string | null;
  /** A stop request's own grace period (0: at once), cleared by the next start. */
  stop_grace_override: number | null;
  host_id: string | null;
  /** Metal: the node the instance is deployed on (host_id is its conductor). */
  node_id: string | null;
  desired_state: string;
  state: string;
  message: string;
  exit_code: number | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** The deployment whose replica this is, the revision it runs and its slot; null for a bare instance. */
  deployment_id: string | null;
  revision: number | null;
  slot: number | null;
  /** The instance that preempted this one: set while it stops and waits to be placed again. */
  preempted_by: string | null;
  /** What its message says of the preemption (the preemptor named only within its project). */
  preemption: string;
}

/** A deployment: its spec (the template lives in its revisions) and the status its controller writes. */
export interface DeploymentTable {
  id: string;
  project_id: string;
  name: string;
  labels: string;
  replicas: number;
  priority: number;
  /** JSON: the strategy with every field given */
  strategy: string;
  paused: number;
  /** the current revision: the one replicas are brought to */
  revision: number;
  /** counts the changes of the spec */
  generation: number;
  observed_generation: number;
  status_replicas: number;
  status_updated: number;
  status_ready: number;
  status_available: number;
  /** progressing | complete | paused | degraded | failed | awaiting-promotion */
  phase: string;
  message: string;
  replacements: number;
  created_at: string;
  updated_at: string;
}

export interface DeploymentRevisionTable {
  deployment_id: string;
  revision: number;
  /** sha256 (hex) of the template and priority, as canonical JSON */
  hash: string;
  /** JSON: the instance spec of every replica, without project and name */
  template: string;
  priority: number;
  created_at: string;
  /** when its rollout first completed; null while it has not */
  completed_at: string | null;
  /** a revision made by a rollback or an undo: the revision whose template it copies */
  copied_from: number | null;
  /** a revision made by an automatic rollback: the revision that missed its progress deadline */
  rolled_back_from: number | null;
  /** when its rollout last began (made, resumed, promoted); null: when it was made */
  started_at: string | null;
  /** when its canaries were promoted; null while they wait */
  promoted_at: string | null;
}

/** A replica slot's failures in a row, counted for one revision, and when it is filled again. */
export interface DeploymentSlotTable {
  deployment_id: string;
  slot: number;
  failures: number;
  revision: number;
  retry_at: string | null;
  reason: string;
  /** the failed replica counted last: each failure counts once */
  failed_instance: string | null;
}

/** A bare-metal node's provisioning record; its hosts row (same id) is what the scheduler sees. */
export interface NodeTable {
  id: string;
  name: string;
  bmc_protocol: string;
  /** The BMC URL without its password, for display. */
  bmc_address: string;
  /** host:port of the BMC, unique: one BMC is enrolled once. */
  bmc_endpoint: string;
  /** The whole BMC URL, sealed (src/services/secret-box.ts) with the node id as its context. */
  bmc_secret: string;
  provision_state: string;
  target_state: string | null;
  last_error: string;
  maintenance: number;
  maintenance_reason: string;
  conductor_host_id: string;
  /** JSON: the hardware the last inspection found, or null */
  hardware: string | null;
  /** JSON: MAC addresses the node booted with, so network boots find it again */
  macs: string;
  instance_id: string | null;
  step_started_at: string | null;
  step_deadline_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface PlacementGroupTable {
  id: string;
  project_id: string;
  name: string;
  /** affinity | anti-affinity | spread */
  policy: string;
  /** hard | soft */
  strength: string;
  /** host | physical-host | rack | zone | region */
  level: string;
  max_skew: number;
  created_at: string;
}

/** A project's secret: its value only ever encrypted here (src/services/secret-box.ts). */
export interface SecretTable {
  id: string;
  project_id: string;
  name: string;
  ciphertext: string;
  created_at: string;
  updated_at: string;
}

export interface InstanceGroupTable {
  instance_id: string;
  group_id: string;
}

/** One row per label, so label filters are plain indexed joins on any SQL dialect. */
export interface LabelTable {
  resource_type: string;
  resource_id: string;
  key: string;
  value: string;
}

export interface EventTable {
  seq: Generated<number>;
  at: string;
  project_id: string | null;
  type: string;
  resource_type: string;
  resource_id: string;
  actor: string;
  data: string;
}

export interface Database {
  projects: ProjectTable;
  users: UserTable;
  memberships: MembershipTable;
  tokens: TokenTable;
  join_tokens: JoinTokenTable;
  hosts: HostTable;
  nodes: NodeTable;
  instances: InstanceTable;
  deployments: DeploymentTable;
  deployment_revisions: DeploymentRevisionTable;
  deployment_slots: DeploymentSlotTable;
  placement_groups: PlacementGroupTable;
  instance_groups: InstanceGroupTable;
  secrets: SecretTable;
  labels: LabelTable;
  events: EventTable;
}

export type ProjectRow = Selectable<ProjectTable>;
export type PlacementGroupRow = Selectable<PlacementGroupTable>;
export type UserRow = Selectable<UserTable>;
export type MembershipRow = Selectable<MembershipTable>;
export type JoinTokenRow = Selectable<JoinTokenTable>;
export type TokenRow = Selectable<TokenTable>;
export type HostRow = Selectable<HostTable>;
export type NodeRow = Selectable<NodeTable>;
export type InstanceRow = Selectable<InstanceTable>;
export type DeploymentRow = Selectable<DeploymentTable>;
export type DeploymentRevisionRow = Selectable<DeploymentRevisionTable>;
export type DeploymentSlotRow = Selectable<DeploymentSlotTable>;
export type EventRow = Selectable<EventTable>;
export type SecretRow = Selectable<SecretTable>;
export type NewEvent = Insertable<EventTable>;
export type InstanceUpdate = Updateable<InstanceTable>;
