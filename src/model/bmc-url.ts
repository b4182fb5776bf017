// A BMC's address as users give it: `ipmi://USER:PASS@HOST[:PORT]`,
// `redfish://USER:PASS@HOST[:PORT]` (https) or `redfish+http://...`. The
// server checks it at enrollment and the conductor reads it; neither lets the
// password into a message.
import { isIP } from 'node:net';

export interface BmcUrl {
  protocol: 'ipmi' | 'redfish';
  scheme: 'udp' | 'http' | 'https';
  host: string;
  port: number;
  username: string;
  password: string;
  /** Redfish over https: accept a certificate no authority signed (`?insecure=1`). */
  insecure: boolean;
}

const DNS_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const CONTROL = /[\u0000-\u001f\u007f]/;

const schemes: Record<string, { protocol: BmcUrl['protocol']; scheme: BmcUrl['scheme']; port: number }> = {
  'ipmi:': { protocol: 'ipmi', scheme: 'udp', port: 623 },
  'redfish:': { protocol: 'redfish', scheme: 'https', port: 443 },
  'redfish+https:': { protocol: 'redfish', scheme: 'https', port: 443 },
  'redfish+http:': { protocol: 'redfish', scheme: 'http', port: 80 },
};

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new Error(`the BMC ${what} is not valid percent-encoding`);
  }
}

/** Parses and checks a BMC URL; the error never repeats the password. */
export function parseBmcUrl(raw: string): BmcUrl {
  if (raw.length > 512) throw new Error('a BMC URL is at most 512 characters');
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error('not a BMC URL: expected ipmi://USER:PASS@HOST[:PORT] or redfish://USER:PASS@HOST[:PORT]');
  }
  const s = schemes[u.protocol];
  if (!s)
    throw new Error(
      `unknown BMC protocol ${JSON.stringify(u.protocol.slice(0, -1))}: use ipmi, redfish or redfish+http`,
    );
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if (!host || (isIP(host) === 0 && !DNS_NAME.test(host)))
    throw new Error('the BMC host is not an IP address or a DNS name');
  if ((u.pathname !== '' && u.pathname !== '/') || u.hash) throw new Error('a BMC URL has no path or fragment');
  const params = [...u.searchParams.keys()];
  if (params.some(k => k !== 'insecure')) throw new Error('the only BMC URL parameter is insecure=1');
  const insecure = u.searchParams.get('insecure') === '1';
  if (insecure && s.scheme !== 'https') throw new Error('insecure=1 applies to redfish over https only');
  const username = decode(u.username, 'user name');
  const password = decode(u.password, 'password');
  if (!username || !password) throw new Error('the BMC URL needs a user name and a password (USER:PASS@HOST)');
  if (CONTROL.test(username) || CONTROL.test(password))
    throw new Error('the BMC user name and password may not hold control characters');
  if (s.protocol === 'ipmi') {
    if (Buffer.byteLength(username) > 16) throw new Error('an IPMI user name is at most 16 bytes');
    if (Buffer.byteLength(password) > 20) throw new Error('an IPMI password is at most 20 bytes');
  } else if (Buffer.byteLength(username) > 128 || Buffer.byteLength(password) > 128) {
    throw new Error('a Redfish user name and password are at most 128 bytes each');
  }
  const port = u.port ? Number(u.port) : s.port;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('the BMC port is 1 to 65535');
  return { protocol: s.protocol, scheme: s.scheme, host, port, username, password, insecure };
}

/** host:port, the BMC's identity: one BMC is enrolled once. */
export function bmcEndpoint(b: BmcUrl): string {
  return `${isIP(b.host) === 6 ? `[${b.host}]` : b.host.toLowerCase()}:${b.port}`;
}

/** The URL to show: the user name, never the password. */
export function displayBmcUrl(b: BmcUrl): string {
  const scheme = b.protocol === 'ipmi' ? 'ipmi' : b.scheme === 'http' ? 'redfish+http' : 'redfish';
  return `${scheme}://${encodeURIComponent(b.username)}@${bmcEndpoint(b)}${b.insecure ? '?insecure=1' : ''}`;
}
