// Rows of the projects table.
import type { ProjectRow } from './schema.ts';

/** A new project's row: no usage yet, and null (unlimited) for any quota not given. */
export function newProjectRow(
  id: string,
  name: string,
  t: string,
  o: {
    description?: string | undefined;
    labels?: Record<string, string> | undefined;
    quota?: Partial<Record<'instances' | 'vcpus' | 'memoryMib' | 'diskGib', number | null>> | undefined;
    placementStrategy?: 'binpack' | 'spread' | undefined;
  } = {},
): ProjectRow {
  return {
    id,
    name,
    description: o.description ?? '',
    labels: JSON.stringify(o.labels ?? {}),
    quota_instances: o.quota?.instances ?? null,
    quota_vcpus: o.quota?.vcpus ?? null,
    quota_memory_mib: o.quota?.memoryMib ?? null,
    quota_disk_gib: o.quota?.diskGib ?? null,
    used_instances: 0,
    used_vcpus: 0,
    used_memory_mib: 0,
    used_disk_gib: 0,
    created_at: t,
    updated_at: t,
    placement_strategy: o.placementStrategy ?? 'binpack',
  };
}
