// A Redfish service (DMTF DSP0266) for one emulated machine: the resources a
// provisioning client uses, with the shapes of the DMTF mockups. ServiceRoot
// is open; everything else needs basic auth. The serial console is offered as
// a raw TCP endpoint under SerialConsole.Oem.Strata.TcpAddress.
import { timingSafeEqual, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BootOverride, Machine } from './machine.ts';

export interface RedfishEmulatorOptions {
  machine: Machine;
  username: string;
  password: string;
  /** 0 (the default): any free port. */
  port?: number;
  /** The TCP port of the serial console offered (default: the machine's own serial socket). */
  consolePort?: number;
  /** The largest image InsertMedia fetches. */
  maxMediaBytes?: number;
}

export interface RedfishEmulator {
  port: number;
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

const V1 = '/redfish/v1';
const SYSTEM = `${V1}/Systems/1`;
const MANAGER = `${V1}/Managers/BMC`;
const CD = `${MANAGER}/VirtualMedia/CD`;
const MAX_REQUEST = 64 * 1024;

const TARGETS: Record<string, BootOverride['device']> = { None: 'none', Pxe: 'pxe', Hdd: 'disk', Cd: 'cd' };
const TARGET_OF: Record<BootOverride['device'], string> = { none: 'None', pxe: 'Pxe', disk: 'Hdd', cd: 'Cd' };
const RESET_TYPES = ['On', 'ForceOn', 'ForceOff', 'GracefulShutdown', 'ForceRestart', 'GracefulRestart', 'PowerCycle'];

class RedfishError extends Error {
  readonly status: number;
  readonly messageId: string;
  constructor(status: number, messageId: string, message: string) {
    super(message);
    this.status = status;
    this.messageId = messageId;
  }
}

const collection = (id: string, name: string, members: string[]): Json => ({
  '@odata.id': id,
  '@odata.type': `#${name}.${name}`,
  Name: name.replace('Collection', ' Collection'),
  Members: members.map(m => ({ '@odata.id': m })),
  'Members@odata.count': members.length,
});

export async function startRedfishEmulator(o: RedfishEmulatorOptions): Promise<RedfishEmulator> {
  const m = o.machine;
  const maxMedia = o.maxMediaBytes ?? 1024 * 1024 * 1024;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  const expected = digest(`${o.username}:${o.password}`);

  const authorized = (req: IncomingMessage): boolean => {
    const h = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers.authorization ?? '');
    return !!h && timingSafeEqual(digest(Buffer.from(h[1]!, 'base64').toString('utf8')), expected);
  };

  const resources: Record<string, () => Json> = {
    '/redfish': () => ({ v1: `${V1}/` }),
    [V1]: () => ({
      '@odata.id': `${V1}/`,
      '@odata.type': '#ServiceRoot.v1_5_0.ServiceRoot',
      Id: 'RootService',
      Name: 'Strata rig Redfish service',
      RedfishVersion: '1.6.0',
      Systems: { '@odata.id': `${V1}/Systems` },
      Managers: { '@odata.id': `${V1}/Managers` },
    }),
    [`${V1}/Systems`]: () => collection(`${V1}/Systems`, 'ComputerSystemCollection', [SYSTEM]),
    [SYSTEM]: () => {
      const boot = m.boot();
      return {
        '@odata.id': SYSTEM,
        '@odata.type': '#ComputerSystem.v1_13_0.ComputerSystem',
        Id: '1',
        Name: m.config.name,
        SystemType: 'Physical',
        PowerState: m.power() === 'on' ? 'On' : 'Off',
        ProcessorSummary: { Count: 1 },
        MemorySummary: { TotalSystemMemoryGiB: m.config.memoryMib / 1024 },
        Boot: {
          BootSourceOverrideTarget: TARGET_OF[boot.device],
          BootSourceOverrideEnabled: boot.device === 'none' ? 'Disabled' : boot.persistent ? 'Continuous' : 'Once',
          'BootSourceOverrideTarget@Redfish.AllowableValues': Object.keys(TARGETS),
          BootSourceOverrideMode: 'Legacy',
        },
        Links: { ManagedBy: [{ '@odata.id': MANAGER }] },
        Actions: {
          '#ComputerSystem.Reset': {
            target: `${SYSTEM}/Actions/ComputerSystem.Reset`,
            'ResetType@Redfish.AllowableValues': RESET_TYPES,
          },
        },
      };
    },
    [`${V1}/Managers`]: () => collection(`${V1}/Managers`, 'ManagerCollection', [MANAGER]),
    [MANAGER]: () => ({
      '@odata.id': MANAGER,
      '@odata.type': '#Manager.v1_10_0.Manager',
      Id: 'BMC',
      Name: `${m.config.name} BMC`,
      ManagerType: 'BMC',
      PowerState: 'On',
      VirtualMedia: { '@odata.id': `${MANAGER}/VirtualMedia` },
      SerialConsole: {
        ServiceEnabled: true,
        MaxConcurrentSessions: 1,
        ConnectTypesSupported: ['Oem'],
        Oem: { Strata: { TcpAddress: `127.0.0.1:${o.consolePort ?? m.config.serialPort}` } },
      },
      Links: { ManagerForServers: [{ '@odata.id': SYSTEM }] },
    }),
    [`${MANAGER}/VirtualMedia`]: () => collection(`${MANAGER}/VirtualMedia`, 'VirtualMediaCollection', [CD]),
    [CD]: () => {
      const media = m.media();
      return {
        '@odata.id': CD,
        '@odata.type': '#VirtualMedia.v1_3_0.VirtualMedia',
        Id: 'CD',
        Name: 'Virtual CD',
        MediaTypes: ['CD', 'DVD'],
        Image: media?.image ?? null,
        Inserted: media?.inserted ?? false,
        WriteProtected: true,
        ConnectedVia: media ? 'URI' : 'NotConnected',
        Actions: {
          '#VirtualMedia.InsertMedia': { target: `${CD}/Actions/VirtualMedia.InsertMedia` },
          '#VirtualMedia.EjectMedia': { target: `${CD}/Actions/VirtualMedia.EjectMedia` },
        },
      };
    },
  };

  const posts: Record<string, (body: Json) => Promise<void>> = {
    [`${SYSTEM}/Actions/ComputerSystem.Reset`]: async body => {
      const type = body.ResetType;
      if (typeof type !== 'string' || !RESET_TYPES.includes(type))
        throw new RedfishError(
          400,
          'Base.1.8.ActionParameterValueNotInList',
          `ResetType must be one of ${RESET_TYPES}`,
        );
      if (type === 'On' || type === 'ForceOn') await m.powerOn();
      else if (type === 'ForceOff' || type === 'GracefulShutdown') await m.powerOff();
      else await m.reset();
    },
    [`${CD}/Actions/VirtualMedia.InsertMedia`]: async body => {
      if (typeof body.Image !== 'string' || !/^https?:\/\//.test(body.Image) || body.Image.length > 2048)
        throw new RedfishError(400, 'Base.1.8.ActionParameterValueFormatError', 'Image must be an http or https URL');
      if (body.Inserted === false) return;
      if (m.media()?.inserted) throw new RedfishError(400, 'Base.1.8.ResourceInUse', 'a medium is inserted: eject it');
      try {
        await m.insertMedia(body.Image, maxMedia);
      } catch (e) {
        throw new RedfishError(
          400,
          'Base.1.8.ResourceAtUriUnauthorized',
          `cannot fetch the image: ${(e as Error).message}`,
        );
      }
    },
    [`${CD}/Actions/VirtualMedia.EjectMedia`]: async () => m.ejectMedia(),
  };

  const patchBoot = (body: Json): void => {
    const boot = body.Boot as Json | undefined;
    if (typeof boot !== 'object' || boot === null || Object.keys(body).length !== 1)
      throw new RedfishError(400, 'Base.1.8.PropertyNotWritable', 'only Boot may be changed');
    const now = m.boot();
    const target = boot.BootSourceOverrideTarget ?? TARGET_OF[now.device];
    const enabled = boot.BootSourceOverrideEnabled ?? (now.persistent ? 'Continuous' : 'Once');
    if (typeof target !== 'string' || !Object.hasOwn(TARGETS, target))
      throw new RedfishError(
        400,
        'Base.1.8.PropertyValueNotInList',
        `BootSourceOverrideTarget: one of ${Object.keys(TARGETS)}`,
      );
    if (enabled !== 'Once' && enabled !== 'Continuous' && enabled !== 'Disabled')
      throw new RedfishError(
        400,
        'Base.1.8.PropertyValueNotInList',
        'BootSourceOverrideEnabled: Once, Continuous or Disabled',
      );
    const device = enabled === 'Disabled' ? 'none' : TARGETS[target]!;
    m.setBoot({ device, persistent: enabled !== 'Once' });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
    const get = resources[path];
    const post = posts[path];
    if (!get && !post)
      throw new RedfishError(404, 'Base.1.8.ResourceMissingAtURI', `no resource at ${path.slice(0, 200)}`);
    if (path !== V1 && path !== '/redfish' && !authorized(req)) {
      res.setHeader('www-authenticate', 'Basic realm="Redfish"');
      throw new RedfishError(401, 'Base.1.8.NoValidSession', 'authentication required');
    }
    const allowed = post ? ['POST'] : path === SYSTEM ? ['GET', 'PATCH'] : ['GET'];
    if (!allowed.includes(req.method ?? '')) {
      res.setHeader('allow', allowed.join(', '));
      throw new RedfishError(405, 'Base.1.8.OperationNotAllowed', `${req.method} is not allowed here`);
    }
    if (req.method === 'GET') return send(res, 200, get!());
    const body = await readJson(req);
    if (req.method === 'PATCH') {
      patchBoot(body);
      return send(res, 200, get!());
    }
    await post!(body);
    res.writeHead(204).end();
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      const status = e instanceof RedfishError ? e.status : 500;
      const id = e instanceof RedfishError ? e.messageId : 'Base.1.8.InternalError';
      if (!res.headersSent)
        send(res, status, {
          error: {
            code: id,
            message: e.message,
            '@Message.ExtendedInfo': [{ '@odata.type': '#Message.v1_1_1.Message', MessageId: id, Message: e.message }],
          },
        });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>(resolve => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(res: ServerResponse, status: number, body: Json): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'odata-version': '4.0' }).end(text);
}

async function readJson(req: IncomingMessage): Promise<Json> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_REQUEST) throw new RedfishError(413, 'Base.1.8.GeneralError', 'request body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    const json: unknown = text ? JSON.parse(text) : {};
    if (typeof json === 'object' && json !== null && !Array.isArray(json)) return json as Json;
  } catch {}
  throw new RedfishError(400, 'Base.1.8.MalformedJSON', 'the request body is not a JSON object');
}
