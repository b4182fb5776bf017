// What a kind of instance is, in one object: its own spec fields (beside the
// shared ones of src/model/schemas.ts; src/kinds/schemas.ts puts them
// together), their defaults and checks, what an instance presents of them,
// its CLI flags, its capabilities and its driver.
// A kind is one folder of src/kinds/ and one line of src/kinds/index.ts.
import type { Static, TObject, TProperties } from 'typebox';
import type { ObservedOut } from '../model/schemas.ts';
import type { RegistryAuth } from '../drivers/container/registry-auth.ts';
import type { Driver } from '../drivers/driver.ts';
import type { Capabilities, Capability } from '../model/capabilities.ts';

/** One thing wrong with a spec: the field (`body.ports.1.hostPort`) and what is wrong with it. */
export interface Problem {
  field: string;
  message: string;
}

export interface Resources {
  vcpus: number;
  memoryMib: number;
  diskGib: number;
}

/** A CLI flag of `strata run` / `strata instance create`. */
export interface CliFlag {
  /** As commander takes it: '--machine <type>', '--read-only'. */
  flags: string;
  description: string;
  choices?: readonly string[];
  /** One value, with the ones before it for a repeatable flag; throws an Error saying what is expected. */
  parse?: (value: string, previous: unknown) => unknown;
}

/** What the agent gives every kind's driver factory: its settings (`strata agent` flags). */
export interface DriverSettings {
  /** The agent's state directory. */
  dataDir: string;
  /** The Docker API socket (containers, and OCI images booted as VMs) and the credentials for pulls. */
  dockerSocket: string;
  registryAuth?: RegistryAuth | undefined;
  /** VMs: guest kernel and image store, boot timeout, the host bridge and its subnet. */
  vmAssets: string;
  vmBootTimeoutSeconds: number;
  vmBridge: string;
  vmSubnet: string;
  /** Bare metal: the provisioning network's bridge (empty: no metal driver), the conductor's CIDR on it, the boot server's port, the deploy ramdisk. */
  metalBridge: string;
  metalCidr: string;
  metalHttpPort: number;
  metalAssets: string;
  /** Where drivers log what operators want to see (a metal node's steps and their phases). */
  log?: ((msg: string, fields?: Record<string, unknown>) => void) | undefined;
}

export type SpecOf<F extends TProperties> = Static<TObject<F>>;

/** What `show` reads of an instance: the kind's output fields and what its host observes. */
export type Shown<O extends TProperties> = SpecOf<O> & { observed: ObservedOut };

/** A kind's TypeBox fields: its spec fields beside the shared ones, and what every instance presents of them. */
export interface KindFields<F extends TProperties = TProperties, O extends TProperties = TProperties> {
  /** All optional. */
  spec: F;
  /** An instance of another kind shows their defaults. */
  output: O;
}

export interface Kind<F extends TProperties = TProperties, O extends TProperties = TProperties> {
  readonly name: string;
  /** For messages: "containers", "VMs". */
  readonly plural: string;
  /** One line for help texts. */
  readonly description: string;
  /** Said when a spec of this kind gives a field only other kinds have. */
  readonly foreignFieldsNote?: string;
  /**
   * Its TypeBox fields, loaded on demand: the registry itself loads no
   * TypeBox, so the CLI can read it at little cost.
   */
  fields(): Promise<KindFields<F, O>>;
  readonly resources: Resources;
  /** Its part of a new instance's stored options document, defaults filled in. */
  options(spec: SpecOf<F>): Record<string, unknown>;
  /** Its output fields from a stored options document; defaults where absent. */
  present(options: Record<string, unknown>): SpecOf<O>;
  /** What the schema alone cannot check; problems name fields as `body.x`. */
  check(spec: SpecOf<F>): Problem[];
  /** The rows `strata instance show` adds for an instance of this kind. */
  show(i: Shown<O>): [string, unknown][];
  readonly cli: {
    readonly flags: readonly CliFlag[];
    /** The spec fields the given flags (commander's parsed options) set. */
    spec(flags: Record<string, unknown>): Partial<SpecOf<F>>;
  };
  readonly capabilities: Capabilities;
  /** What to say beside a refusal of a capability the kind lacks. */
  readonly hints?: Partial<Record<Capability | 'healthChecks', string>>;
  /** An instance takes a whole host (a bare-metal node), and is charged all of it. */
  readonly wholeHost?: boolean;
  /** Memory its host spends on an instance beyond what the instance asks for, which placement counts. */
  readonly hostMemoryOverheadMib: number;
  /** Makes its driver; loads the driver's code only when called. */
  createDriver(settings: DriverSettings): Promise<Driver>;
}
