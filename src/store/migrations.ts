// Versioned schema migrations, applied in order at server start. Never edit a
// migration that has shipped: add a new one.
import { sql, type Kysely } from 'kysely';
import type { Migration, MigrationProvider } from 'kysely/migration';

type Db = Kysely<unknown>;

const initial: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('projects')
      .addColumn('id', 'text', c => c.primaryKey())
      .addColumn('name', 'text', c => c.notNull().unique())
      .addColumn('description', 'text', c => c.notNull().defaultTo(''))
      .addColumn('labels', 'text', c => c.notNull().defaultTo('{}'))
      .addColumn('quota_instances', 'integer')
      .addColumn('quota_vcpus', 'integer')
      .addColumn('quota_memory_mib', 'integer')
      .addColumn('quota_disk_gib', 'integer')
      .addColumn('used_instances', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('used_vcpus', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('used_memory_mib', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('used_disk_gib', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', c => c.notNull())
      .addColumn('updated_at', 'text', c => c.notNull())
      .execute();

    await db.schema
      .createTable('users')
      .addColumn('id', 'text', c => c.primaryKey())
      .addColumn('name', 'text', c => c.notNull().unique())
      .addColumn('cluster_admin', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', c => c.notNull())
      .execute();

    await db.schema
      .createTable('memberships')
      .addColumn('project_id', 'text', c => c.notNull().references('projects.id').onDelete('cascade'))
      .addColumn('user_id', 'text', c => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('role', 'text', c => c.notNull())
      .addColumn('created_at', 'text', c => c.notNull())
      .addPrimaryKeyConstraint('memberships_pk', ['project_id', 'user_id'])
      .execute();
    await db.schema.createIndex('memberships_user').on('memberships').column('user_id').execute();

    await db.schema
      .createTable('hosts')
      .addColumn('id', 'text', c => c.primaryKey())
      .addColumn('name', 'text', c => c.notNull().unique())
      .addColumn('kind', 'text', c => c.notNull())
      .addColumn('parent_instance_id', 'text')
      .addColumn('region', 'text', c => c.notNull().defaultTo(''))
      .addColumn('zone', 'text', c => c.notNull().defaultTo(''))
      .addColumn('rack', 'text', c => c.notNull().defaultTo(''))
      .addColumn('labels', 'text', c => c.notNull().defaultTo('{}'))
      .addColumn('capacity_vcpus', 'integer', c => c.notNull())
      .addColumn('capacity_memory_mib', 'integer', c => c.notNull())
      .addColumn('capacity_disk_gib', 'integer', c => c.notNull())
      .addColumn('allocatable_vcpus', 'integer', c => c.notNull())
      .addColumn('allocatable_memory_mib', 'integer', c => c.notNull())
      .addColumn('allocatable_disk_gib', 'integer', c => c.notNull())
      .addColumn('drivers', 'text', c => c.notNull().defaultTo('[]'))
      .addColumn('state', 'text', c => c.notNull())
      .addColumn('pool', 'text', c => c.references('projects.id').onDelete('set null'))
      .addColumn('info', 'text', c => c.notNull().defaultTo('{}'))
      .addColumn('last_heartbeat_at', 'text')
      .addColumn('created_at', 'text', c => c.notNull())
      .addColumn('updated_at', 'text', c => c.notNull())
      .execute();

    await db.schema
      .createTable('tokens')
      .addColumn('id', 'text', c => c.primaryKey())
      .addColumn('name', 'text', c => c.notNull())
      .addColumn('hash', 'text', c => c.notNull().unique())
      .addColumn('user_id', 'text', c => c.references('users.id').onDelete('cascade'))
      .addColumn('host_id', 'text', c => c.references('hosts.id').onDelete('cascade'))
      .addColumn('created_at', 'text', c => c.notNull())
      .addColumn('expires_at', 'text')
      .execute();
    await db.schema.createIndex('tokens_user').on('tokens').column('user_id').execute();

    await db.schema
      .createTable('join_tokens')
      .addColumn('id', 'text', c => c.primaryKey())
      .addColumn('hash', 'text', c => c.notNull().unique())
      .addColumn('description', 'text', c => c.notNull().defaultTo(''))
      .addColumn('pool', 'text', c => c.references('projects.id').onDelete('cascade'))
      .addColumn('created_at', 'text', c => c.notNull())
      .addColumn('expires_at', 'text')
      .execute();

    await db.schema
      .createTable('instances')
      .addColumn('id', 'text', c => c.primaryKey())
      .addColumn('project_id', 'text', c => c.notNull().references('projects.id'))
      .addColumn('name', 'text', c => c.notNull())
      .addColumn('kind', 'text', c => c.notNull())
      .addColumn('image', 'text', c => c.notNull())
      .addColumn('command', 'text', c => c.notNull().defaultTo('[]'))
      .addColumn('args', 'text', c => c.notNull().defaultTo('[]'))
      .addColumn('env', 'text', c => c.notNull().defaultTo('{}'))
      .addColumn('vcpus', 'integer', c => c.notNull())
      .addColumn('memory_mib', 'integer', c => c.notNull())
      .addColumn('disk_gib', 'integer', c => c.notNull())
      .addColumn('labels', 'text', c => c.notNull().defaultTo('{}'))
      .addColumn('constraints', 'text', c => c.notNull().defaultTo('[]'))
      .addColumn('host_id', 'text', c => c.references('hosts.id'))
      .addColumn('desired_state', 'text', c => c.notNull())
      .addColumn('state', 'text', c => c.notNull())
      .addColumn('message', 'text', c => c.notNull().defaultTo(''))
      .addColumn('exit_code', 'integer')
      .addColumn('created_at', 'text', c => c.notNull())
      .addColumn('updated_at', 'text', c => c.notNull())
      .addColumn('started_at', 'text')
      .addColumn('finished_at', 'text')
      .addUniqueConstraint('instances_project_name', ['project_id', 'name'])
      .execute();
    await db.schema.createIndex('instances_project').on('instances').columns(['project_id', 'id']).execute();
    await db.schema.createIndex('instances_host').on('instances').column('host_id').execute();
    await db.schema.createIndex('instances_state').on('instances').column('state').execute();

    await db.schema
      .createTable('labels')
      .addColumn('resource_type', 'text', c => c.notNull())
      .addColumn('resource_id', 'text', c => c.notNull())
      .addColumn('key', 'text', c => c.notNull())
      .addColumn('value', 'text', c => c.notNull())
      .addPrimaryKeyConstraint('labels_pk', ['resource_type', 'resource_id', 'key'])
      .execute();
    await db.schema.createIndex('labels_lookup').on('labels').columns(['resource_type', 'key', 'value']).execute();

    // The event sequence is the cursor of the event stream: it must be strictly increasing.
    await db.schema
      .createTable('events')
      .addColumn('seq', sql`integer`, c => c.primaryKey().autoIncrement())
      .addColumn('at', 'text', c => c.notNull())
      .addColumn('project_id', 'text')
      .addColumn('type', 'text', c => c.notNull())
      .addColumn('resource_type', 'text', c => c.notNull())
      .addColumn('resource_id', 'text', c => c.notNull())
      .addColumn('actor', 'text', c => c.notNull())
      .addColumn('data', 'text', c => c.notNull().defaultTo('{}'))
      .execute();
    await db.schema.createIndex('events_project').on('events').columns(['project_id', 'seq']).execute();
    await db.schema.createIndex('events_resource').on('events').columns(['resource_id', 'seq']).execute();
  },
};

const restartPolicies: Migration = {
  async up(db: Db) {
    await db.schema
      .alterTable('instances')
      .addColumn('restart_policy', 'text', c => c.notNull().defaultTo('{"policy":"never"}'))
      .execute();
    await db.schema
      .alterTable('instances')
      .addColumn('restarts', 'integer', c => c.notNull().defaultTo(0))
      .execute();
  },
};

const containerOptions: Migration = {
  async up(db: Db) {
    // Options no query filters on (working dir, user, ports, read-only root,
    // tmpfs, health check) live in one JSON document; so does what the agent observes.
    await db.schema
      .alterTable('instances')
      .addColumn('options', 'text', c => c.notNull().defaultTo('{}'))
      .execute();
    await db.schema
      .alterTable('instances')
      .addColumn('pids_limit', 'integer', c => c.notNull().defaultTo(4096))
      .execute();
    await db.schema
      .alterTable('instances')
      .addColumn('observed', 'text', c => c.notNull().defaultTo('{}'))
      .execute();
  },
};

const restartRequests: Migration = {
  async up(db: Db) {
    // Set by a user's restart of a running instance until its agent starts it again.
    await db.schema.alterTable('instances').addColumn('restart_requested_at', 'text').execute();
  },
};

const stopGraceOverride: Migration = {
  async up(db: Db) {
    // The grace period a stop request asked for (0: kill at once), until the next start.
    await db.schema.alterTable('instances').addColumn('stop_grace_override', 'integer').execute();
  },
};

const placementGroups: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('placement_groups')
      .addColumn('id', 'text', c => c.primaryKey())
      .addColumn('project_id', 'text', c => c.notNull().references('projects.id').onDelete('cascade'))
      .addColumn('name', 'text', c => c.notNull())
      .addColumn('policy', 'text', c => c.notNull())
      .addColumn('strength', 'text', c => c.notNull())
      .addColumn('level', 'text', c => c.notNull())
      .addColumn('max_skew', 'integer', c => c.notNull().defaultTo(1))
      .addColumn('created_at', 'text', c => c.notNull())
      .execute();
    await db.schema
      .createIndex('placement_groups_name')
      .on('placement_groups')
      .columns(['project_id', 'name'])
      .unique()
      .execute();
    // Membership as rows, so the placer reads a group's members with one indexed query.
    await db.schema
      .createTable('instance_groups')
      .addColumn('instance_id', 'text', c => c.notNull())
      .addColumn('group_id', 'text', c => c.notNull())
      .addPrimaryKeyConstraint('instance_groups_pk', ['instance_id', 'group_id'])
      .execute();
    await db.schema.createIndex('instance_groups_group').on('instance_groups').column('group_id').execute();
    await db.schema
      .alterTable('projects')
      .addColumn('placement_strategy', 'text', c => c.notNull().defaultTo('binpack'))
      .execute();
  },
};

const secrets: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('secrets')
      .addColumn('id', 'text', c => c.primaryKey())
      .addColumn('project_id', 'text', c => c.notNull().references('projects.id').onDelete('cascade'))
      .addColumn('name', 'text', c => c.notNull())
      .addColumn('ciphertext', 'text', c => c.notNull())
      .addColumn('created_at', 'text', c => c.notNull())
      .addColumn('updated_at', 'text', c => c.notNull())
      .execute();
    await db.schema.createIndex('secrets_name').on('secrets').columns(['project_id', 'name']).unique().execute();
  },
};

const nodes: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('nodes')
      .addColumn('id', 'text', c => c.primaryKey())
      .addColumn('name', 'text', c => c.notNull().unique())
      .addColumn('bmc_protocol', 'text', c => c.notNull())
      .addColumn('bmc_address', 'text', c => c.notNull())
      .addColumn('bmc_endpoint', 'text', c => c.notNull().unique())
      .addColumn('bmc_secret', 'text', c => c.notNull())
      .addColumn('provision_state', 'text', c => c.notNull())
      .addColumn('target_state', 'text')
      .addColumn('last_error', 'text', c => c.notNull().defaultTo(''))
      .addColumn('maintenance', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('maintenance_reason', 'text', c => c.notNull().defaultTo(''))
      .addColumn('conductor_host_id', 'text', c => c.notNull())
      .addColumn('hardware', 'text')
      .addColumn('macs', 'text', c => c.notNull().defaultTo('[]'))
      .addColumn('instance_id', 'text')
      .addColumn('step_started_at', 'text')
      .addColumn('step_deadline_at', 'text')
      .addColumn('created_at', 'text', c => c.notNull())
      .addColumn('updated_at', 'text', c => c.notNull())
      .execute();
    await db.schema.createIndex('nodes_conductor').on('nodes').column('conductor_host_id').execute();
    await db.schema.alterTable('instances').addColumn('node_id', 'text').execute();
  },
};

const instancePriority: Migration = {
  async up(db: Db) {
    // Instances stored before this wait for capacity too: waiting is the default now.
    await db.schema
      .alterTable('instances')
      .addColumn('priority', 'integer', c => c.notNull().defaultTo(0))
      .execute();
    await db.schema
      .alterTable('instances')
      .addColumn('wait_for_capacity', 'integer', c => c.notNull().defaultTo(1))
      .execute();
  },
};

const deployments: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('deployments')
      .addColumn('id', 'text', c => c.primaryKey())
      .addColumn('project_id', 'text', c => c.notNull().references('projects.id'))
      .addColumn('name', 'text', c => c.notNull())
      .addColumn('labels', 'text', c => c.notNull().defaultTo('{}'))
      .addColumn('replicas', 'integer', c => c.notNull())
      .addColumn('priority', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('strategy', 'text', c => c.notNull())
      .addColumn('paused', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('revision', 'integer', c => c.notNull())
      .addColumn('generation', 'integer', c => c.notNull())
      .addColumn('observed_generation', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('status_replicas', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('status_updated', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('status_ready', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('status_available', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('phase', 'text', c => c.notNull().defaultTo('progressing'))
      .addColumn('message', 'text', c => c.notNull().defaultTo(''))
      .addColumn('replacements', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', c => c.notNull())
      .addColumn('updated_at', 'text', c => c.notNull())
      .addUniqueConstraint('deployments_project_name', ['project_id', 'name'])
      .execute();
    await db.schema.createIndex('deployments_project').on('deployments').columns(['project_id', 'id']).execute();
    // Every template a deployment has had, numbered from 1: what rollbacks go back to.
    await db.schema
      .createTable('deployment_revisions')
      .addColumn('deployment_id', 'text', c => c.notNull().references('deployments.id').onDelete('cascade'))
      .addColumn('revision', 'integer', c => c.notNull())
      .addColumn('hash', 'text', c => c.notNull())
      .addColumn('template', 'text', c => c.notNull())
      .addColumn('priority', 'integer', c => c.notNull())
      .addColumn('created_at', 'text', c => c.notNull())
      .addPrimaryKeyConstraint('deployment_revisions_pk', ['deployment_id', 'revision'])
      .execute();
    // A replica slot's failures in a row and when it is filled again: kept here
    // so a restarted server keeps the backoff.
    await db.schema
      .createTable('deployment_slots')
      .addColumn('deployment_id', 'text', c => c.notNull().references('deployments.id').onDelete('cascade'))
      .addColumn('slot', 'integer', c => c.notNull())
      .addColumn('failures', 'integer', c => c.notNull().defaultTo(0))
      .addColumn('revision', 'integer', c => c.notNull())
      .addColumn('retry_at', 'text')
      .addColumn('reason', 'text', c => c.notNull().defaultTo(''))
      .addColumn('failed_instance', 'text')
      .addPrimaryKeyConstraint('deployment_slots_pk', ['deployment_id', 'slot'])
      .execute();
    // A replica's deployment, the revision it runs and its slot (null: a bare instance).
    await db.schema.alterTable('instances').addColumn('deployment_id', 'text').execute();
    await db.schema.alterTable('instances').addColumn('revision', 'integer').execute();
    await db.schema.alterTable('instances').addColumn('slot', 'integer').execute();
    await db.schema.createIndex('instances_deployment').on('instances').column('deployment_id').execute();
  },
};

const rollouts: Migration = {
  async up(db: Db) {
    // When a revision's rollout first completed: its progress deadline applies only before.
    await db.schema.alterTable('deployment_revisions').addColumn('completed_at', 'text').execute();
    // A revision made by going back: the revision whose template it copies, and
    // (an automatic rollback) the revision that failed.
    await db.schema.alterTable('deployment_revisions').addColumn('copied_from', 'integer').execute();
    await db.schema.alterTable('deployment_revisions').addColumn('rolled_back_from', 'integer').execute();
    // When its rollout last began (made, resumed, promoted): what its deadline counts from.
    await db.schema.alterTable('deployment_revisions').addColumn('started_at', 'text').execute();
    // When its canaries were promoted, by hand or by themselves.
    await db.schema.alterTable('deployment_revisions').addColumn('promoted_at', 'text').execute();
  },
};

const preemption: Migration = {
  async up(db: Db) {
    // Who preempted an instance, and what its message says of it, until it is placed again.
    await db.schema.alterTable('instances').addColumn('preempted_by', 'text').execute();
    await db.schema
      .alterTable('instances')
      .addColumn('preemption', 'text', c => c.notNull().defaultTo(''))
      .execute();
    await db.schema.createIndex('instances_preempted_by').on('instances').column('preempted_by').execute();
  },
};

export const migrations: Record<string, Migration> = {
  '0001_initial': initial,
  '0002_restart_policies': restartPolicies,
  '0003_container_options': containerOptions,
  '0004_restart_requests': restartRequests,
  '0005_stop_grace_override': stopGraceOverride,
  '0006_placement_groups': placementGroups,
  '0007_secrets': secrets,
  '0008_nodes': nodes,
  '0009_instance_priority': instancePriority,
  '0010_deployments': deployments,
  '0011_rollouts': rollouts,
  '0013_preemption': preemption,
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};
