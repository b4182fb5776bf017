// Row -> API object. The API speaks camelCase objects; the store keeps flat columns.
import type { DesiredState, InstanceState } from '../model/instance-state.ts';
import { type KindName, presentKindFields } from '../kinds/index.ts';
import type { InstanceOut } from '../kinds/schemas.ts';
import type { HostKind, HostState } from '../model/kinds.ts';
import type { EventRow, HostRow, InstanceRow, NodeRow, ProjectRow } from '../store/schema.ts';
import type { NodeOut, ProvisionState } from '../model/nodes.ts';
import type { InstanceOptions } from '../services/instances.ts';
import type { Constraint, RestartPolicy, EventOut, HostOut, ObservedOut, ProjectOut } from '../model/schemas.ts';

const json = <T>(text: string): T => JSON.parse(text) as T;

export function presentProject(r: ProjectRow): ProjectOut {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    labels: json(r.labels),
    quota: {
      instances: r.quota_instances,
      vcpus: r.quota_vcpus,
      memoryMib: r.quota_memory_mib,
      diskGib: r.quota_disk_gib,
    },
    usage: { instances: r.used_instances, vcpus: r.used_vcpus, memoryMib: r.used_memory_mib, diskGib: r.used_disk_gib },
    placementStrategy: r.placement_strategy as 'binpack' | 'spread',
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function presentHost(r: HostRow): HostOut {
  return {
    id: r.id,
    name: r.name,
    kind: r.kind as HostKind,
    parent: r.parent_instance_id,
    topology: { region: r.region, zone: r.zone, rack: r.rack },
    labels: json(r.labels),
    capacity: { vcpus: r.capacity_vcpus, memoryMib: r.capacity_memory_mib, diskGib: r.capacity_disk_gib },
    allocatable: { vcpus: r.allocatable_vcpus, memoryMib: r.allocatable_memory_mib, diskGib: r.allocatable_disk_gib },
    drivers: json(r.drivers),
    state: r.state as HostState,
    pool: r.pool,
    info: json(r.info),
    lastHeartbeatAt: r.last_heartbeat_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function presentNode(n: NodeRow, h: HostRow | undefined, conductor: string): NodeOut {
  return {
    id: n.id,
    name: n.name,
    bmc: { protocol: n.bmc_protocol as 'ipmi' | 'redfish', address: n.bmc_address },
    provisionState: n.provision_state as ProvisionState,
    targetState: n.target_state as ProvisionState | null,
    lastError: n.last_error,
    maintenance: n.maintenance === 1,
    maintenanceReason: n.maintenance_reason,
    conductor,
    topology: { region: h?.region ?? '', zone: h?.zone ?? '', rack: h?.rack ?? '' },
    labels: h ? json(h.labels) : {},
    capacity: {
      vcpus: h?.capacity_vcpus ?? 0,
      memoryMib: h?.capacity_memory_mib ?? 0,
      diskGib: h?.capacity_disk_gib ?? 0,
    },
    hardware: n.hardware === null ? null : json(n.hardware),
    instance: n.instance_id,
    stepStartedAt: n.step_started_at,
    stepDeadlineAt: n.step_deadline_at,
    createdAt: n.created_at,
    updatedAt: n.updated_at,
  };
}

export function presentInstance(r: InstanceRow): InstanceOut {
  const o = json<Partial<InstanceOptions>>(r.options);
  const seen = json<Partial<ObservedOut>>(r.observed);
  return {
    id: r.id,
    project: r.project_id,
    name: r.name,
    kind: r.kind as KindName,
    image: r.image,
    command: json(r.command),
    args: json(r.args),
    env: json(r.env),
    resources: { vcpus: r.vcpus, memoryMib: r.memory_mib, diskGib: r.disk_gib },
    pidsLimit: r.pids_limit,
    stopGraceSeconds: o.stopGraceSeconds ?? 10,
    restartRequestedAt: r.restart_requested_at,
    stopGraceOverride: r.stop_grace_override,
    workingDir: o.workingDir ?? '',
    healthCheck: o.healthCheck ?? null,
    ...presentKindFields(o),
    groups: o.groups ?? [],
    labels: json(r.labels),
    constraints: json<Constraint[]>(r.constraints),
    priority: r.priority,
    waitForCapacity: r.wait_for_capacity === 1,
    restartPolicy: json<RestartPolicy>(r.restart_policy),
    restarts: r.restarts,
    observed: {
      address: seen.address ?? null,
      ports: seen.ports ?? [],
      health: seen.health ?? null,
      accelerator: seen.accelerator ?? null,
    },
    host: r.host_id,
    node: r.node_id,
    desiredState: r.desired_state as DesiredState,
    state: r.state as InstanceState,
    message: r.message,
    exitCode: r.exit_code,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

export function presentEvent(r: EventRow): EventOut {
  return {
    seq: r.seq,
    at: r.at,
    type: r.type,
    project: r.project_id,
    resourceType: r.resource_type,
    resourceId: r.resource_id,
    actor: r.actor,
    data: json(r.data),
  };
}
