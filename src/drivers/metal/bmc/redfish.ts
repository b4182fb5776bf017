// A BMC over Redfish (DMTF DSP0266): JSON over HTTP(S) with basic auth. The
// service is discovered from its root: the first ComputerSystem and Manager,
// and the manager's (else the system's) VirtualMedia member that takes a CD.
import { connect } from 'node:net';
import { httpRequest } from '../../../lib/http.ts';
import {
  BmcError,
  type Bmc,
  type BmcAddress,
  type BootDevice,
  type ConsoleSession,
  type PowerState,
} from '../types.ts';

const TIMEOUT_MS = 15_000;
/** A BMC fetches the image before it answers InsertMedia (the rig does; some real ones too). */
const INSERT_TIMEOUT_MS = 180_000;
const MAX_BODY = 1024 * 1024;

type Json = Record<string, unknown>;

interface Resources {
  system: string;
  manager: string;
  /** The CD virtual media, when there is one. */
  cd: string | undefined;
}

const TARGETS: Record<BootDevice, string> = { pxe: 'Pxe', disk: 'Hdd', cd: 'Cd' };

export class RedfishBmc implements Bmc {
  readonly protocol = 'redfish' as const;
  readonly supportsVirtualMedia = true;
  private readonly addr: BmcAddress;
  private readonly base: string;
  private found: Promise<Resources> | undefined;

  constructor(addr: BmcAddress) {
    this.addr = addr;
    const host = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
    this.base = `${addr.scheme ?? 'https'}://${host}:${addr.port}`;
  }

  private get where(): string {
    return `the Redfish BMC at ${this.addr.host}:${this.addr.port}`;
  }

  private async call(method: string, path: string, body?: unknown, timeoutMs = TIMEOUT_MS): Promise<Json> {
    const auth = Buffer.from(`${this.addr.username}:${this.addr.password}`).toString('base64');
    const headers: Record<string, string> = { authorization: `Basic ${auth}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let status: number;
    let text: string;
    try {
      const res = await httpRequest(`${this.base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
        insecure: this.addr.insecure,
      });
      status = res.status;
      text = await readBounded(res.body);
    } catch (e) {
      const code = (e as { code?: string; name?: string }).code ?? (e as Error).name;
      if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(String(code)))
        throw new BmcError(
          `${this.where} has a certificate that does not verify (add ?insecure=1 to trust it)`,
          'failed',
        );
      if (code === 'BODY_TOO_LARGE') throw new BmcError(`${this.where} sent a reply over 1 MiB`, 'failed');
      throw new BmcError(`${this.where} does not answer (${code})`, 'unreachable');
    }
    if (status === 401 || status === 403) throw new BmcError(`${this.where} refused the user name or password`, 'auth');
    let json: Json = {};
    try {
      json = text ? (JSON.parse(text) as Json) : {};
    } catch {
      if (status < 300) throw new BmcError(`${this.where} sent something other than JSON for ${path}`, 'failed');
    }
    if (status >= 300) throw new BmcError(`${this.where} said ${status}: ${redfishMessage(json)}`, 'failed');
    return json;
  }

  private resources(): Promise<Resources> {
    this.found ??= (async () => {
      const root = await this.call('GET', '/redfish/v1/');
      const system = await this.firstMember(link(root, 'Systems'));
      const manager = await this.firstMember(link(root, 'Managers'));
      let cd: string | undefined;
      for (const owner of [manager, system]) {
        const media = link(await this.call('GET', owner), 'VirtualMedia', false);
        if (!media) continue;
        for (const member of members(await this.call('GET', media))) {
          const types = (await this.call('GET', member)).MediaTypes;
          if (Array.isArray(types) && types.some(t => t === 'CD' || t === 'DVD')) {
            cd = member;
            break;
          }
        }
        if (cd) break;
      }
      return { system, manager, cd };
    })();
    // A failed discovery is tried again on the next call.
    this.found.catch(() => {
      this.found = undefined;
    });
    return this.found;
  }

  private async firstMember(collection: string): Promise<string> {
    const first = members(await this.call('GET', collection))[0];
    if (!first) throw new BmcError(`${this.where} has no member in ${collection}`, 'failed');
    return first;
  }

  private async action(resource: string, name: string, body: Json, timeoutMs?: number): Promise<void> {
    const actions = (await this.call('GET', resource)).Actions as Json | undefined;
    const target = (actions?.[`#${name}`] as Json | undefined)?.target;
    if (typeof target !== 'string' || !target.startsWith('/'))
      throw new BmcError(`${this.where} offers no ${name} action`, 'unsupported');
    await this.call('POST', target, body, timeoutMs);
  }

  async verify(): Promise<void> {
    await this.power();
  }

  async power(): Promise<PowerState> {
    const state = (await this.call('GET', (await this.resources()).system)).PowerState;
    // PoweringOn counts as on and PoweringOff as off: where the node is going.
    if (state === 'On' || state === 'PoweringOn') return 'on';
    if (state === 'Off' || state === 'PoweringOff') return 'off';
    throw new BmcError(`${this.where} gave no power state`, 'failed');
  }

  async setPower(state: PowerState, from?: PowerState): Promise<void> {
    if ((from ?? (await this.power())) === state) return;
    const { system } = await this.resources();
    await this.action(system, 'ComputerSystem.Reset', { ResetType: state === 'on' ? 'ForceOn' : 'ForceOff' });
  }

  async setBootDevice(device: BootDevice, persistent: boolean): Promise<void> {
    const { system } = await this.resources();
    await this.call('PATCH', system, {
      Boot: {
        BootSourceOverrideTarget: TARGETS[device],
        BootSourceOverrideEnabled: persistent ? 'Continuous' : 'Once',
      },
    });
  }

  private async cd(): Promise<string> {
    const { cd } = await this.resources();
    if (!cd) throw new BmcError(`${this.where} has no virtual CD`, 'unsupported');
    return cd;
  }

  async insertMedia(imageUrl: string): Promise<void> {
    const cd = await this.cd();
    const now = await this.call('GET', cd);
    if (now.Inserted === true && now.Image === imageUrl) return;
    if (now.Inserted === true) await this.action(cd, 'VirtualMedia.EjectMedia', {});
    await this.action(cd, 'VirtualMedia.InsertMedia', { Image: imageUrl, Inserted: true }, INSERT_TIMEOUT_MS);
  }

  async ejectMedia(): Promise<void> {
    const cd = await this.cd();
    if ((await this.call('GET', cd)).Inserted !== true) return;
    await this.action(cd, 'VirtualMedia.EjectMedia', {});
  }

  /** The raw TCP serial console the service advertises on its Manager (Oem.Strata.TcpAddress). */
  async openConsole(): Promise<ConsoleSession> {
    const manager = await this.call('GET', (await this.resources()).manager);
    const serial = manager.SerialConsole as Json | undefined;
    const address = ((serial?.Oem as Json | undefined)?.Strata as Json | undefined)?.TcpAddress;
    const m = typeof address === 'string' ? /^(.+):(\d{1,5})$/.exec(address) : null;
    if (!m) throw new BmcError(`${this.where} offers no serial console this client can open`, 'unsupported');
    const socket = connect({ host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) });
    await new Promise<void>((resolve, reject) => {
      socket.setTimeout(TIMEOUT_MS, () => socket.destroy(new Error('timeout')));
      socket.once('connect', () => {
        socket.setTimeout(0);
        resolve();
      });
      socket.once('error', e =>
        reject(new BmcError(`the serial console of ${this.where}: ${e.message}`, 'unreachable')),
      );
    });
    socket.on('error', () => {});
    return {
      output: (async function* () {
        for await (const chunk of socket) yield chunk as Buffer;
      })(),
      write: data => {
        if (socket.writable) socket.write(data);
      },
      close: () => {
        socket.destroy();
      },
    };
  }
}

/** The path a property links to (`{"@odata.id": "/redfish/v1/..."}`): on this service only. */
function link(resource: Json, property: string, required = true): string {
  const id = (resource[property] as Json | undefined)?.['@odata.id'];
  if (typeof id === 'string' && id.startsWith('/')) return id;
  if (required) throw new BmcError(`the Redfish service links no ${property}`, 'failed');
  return '';
}

function members(collection: Json): string[] {
  const list = Array.isArray(collection.Members) ? (collection.Members as Json[]) : [];
  return list.map(m => m?.['@odata.id']).filter((id): id is string => typeof id === 'string' && id.startsWith('/'));
}

/** The message of a Redfish error body (DSP0266 "Error responses"), bounded. */
function redfishMessage(json: Json): string {
  const error = json.error as Json | undefined;
  const info = error?.['@Message.ExtendedInfo'];
  const first = Array.isArray(info) ? (info[0] as Json | undefined)?.Message : undefined;
  const message =
    typeof first === 'string' ? first : typeof error?.message === 'string' ? error.message : 'no reason given';
  return message.replace(/\p{Cc}/gu, ' ').slice(0, 300);
}

async function readBounded(body: AsyncIterable<Uint8Array>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_BODY) throw Object.assign(new Error('reply too large'), { code: 'BODY_TOO_LARGE' });
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}
