// BMC addresses as URLs: `ipmi://USER:PASS@HOST:PORT`, `redfish://...` (https)
// and `redfish+http://...`. Parsed by hand against RFC 3986 rather than with
// WHATWG URL, which accepts almost anything as the host of an unknown scheme.
// No message here ever holds the password. The server checks a URL at
// enrollment; the conductor reads the address from it.
import { isIPv4, isIPv6 } from 'node:net';

/** Where a node's BMC answers and with which credentials. */
export interface BmcAddress {
  protocol: 'ipmi' | 'redfish';
  host: string;
  port: number;
  username: string;
  password: string;
  /** Redfish only: https (the default for redfish://) or http (`redfish+http://`). */
  scheme?: 'http' | 'https';
  /** Redfish only: accept a self-signed certificate. */
  insecure?: boolean;
}

const MAX_URL = 512;
/** IPMI v2.0: user names up to 16 bytes, passwords up to 20. */
const IPMI_USER_MAX = 16;
const IPMI_PASSWORD_MAX = 20;
const REDFISH_CREDENTIAL_MAX = 255;

const SCHEMES = {
  ipmi: { protocol: 'ipmi', port: 623 },
  redfish: { protocol: 'redfish', scheme: 'https', port: 443 },
  'redfish+http': { protocol: 'redfish', scheme: 'http', port: 80 },
} as const;

/** Characters allowed unescaped in the userinfo of a URL (RFC 3986: unreserved, sub-delims, ':' and %XX). */
const USERINFO = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*$/;
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

function fail(why: string): never {
  throw new Error(`invalid BMC URL: ${why}`);
}

function credential(raw: string, what: 'user name' | 'password', maxBytes: number): string {
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    fail(`the ${what} has a malformed percent-escape`);
  }
  if (value === '') fail(`the ${what} is empty`);
  if (/\p{Cc}/u.test(value)) fail(`the ${what} has a control character`);
  if (Buffer.byteLength(value) > maxBytes) fail(`the ${what} is longer than ${maxBytes} bytes`);
  return value;
}

function host(raw: string): string {
  if (raw.startsWith('[')) {
    if (!raw.endsWith(']') || !isIPv6(raw.slice(1, -1))) fail('the host is not a valid IPv6 address');
    return raw.slice(1, -1);
  }
  if (raw === '') fail('no host');
  if (raw.length > 253) fail('the host name is too long');
  if (/^[0-9.]+$/.test(raw)) {
    if (!isIPv4(raw)) fail(`the host ${raw} is not a valid IPv4 address`);
    return raw;
  }
  const labels = raw.split('.');
  if (!labels.every(l => LABEL.test(l)) || /^[0-9]+$/.test(labels.at(-1)!))
    fail(`the host ${JSON.stringify(raw.slice(0, 64))} is not an IP address or DNS name`);
  return raw.toLowerCase();
}

export function parseBmcUrl(url: string): BmcAddress {
  if (typeof url !== 'string' || url.length > MAX_URL) fail(`longer than ${MAX_URL} characters`);
  const m = /^([a-z+]+):\/\/([^/?#]*)(\/?)(?:\?([^#]*))?$/i.exec(url);
  if (!m) fail('expected ipmi://USER:PASSWORD@HOST[:PORT], redfish://... or redfish+http://...');
  const kind = SCHEMES[m[1]!.toLowerCase() as keyof typeof SCHEMES];
  if (!kind) fail('the scheme must be ipmi, redfish or redfish+http');
  const authority = m[2]!;
  const at = authority.lastIndexOf('@');
  if (at < 0) fail('no user name and password (USER:PASSWORD@HOST)');
  const userinfo = authority.slice(0, at);
  const colon = userinfo.indexOf(':');
  if (colon < 0) fail('no password (USER:PASSWORD@HOST)');
  if (!USERINFO.test(userinfo)) fail('the user name or password has a character that must be percent-encoded');
  const ipmi = kind.protocol === 'ipmi';
  const username = credential(userinfo.slice(0, colon), 'user name', ipmi ? IPMI_USER_MAX : REDFISH_CREDENTIAL_MAX);
  const password = credential(userinfo.slice(colon + 1), 'password', ipmi ? IPMI_PASSWORD_MAX : REDFISH_CREDENTIAL_MAX);

  const hostPort = /^(\[[^\]]*\]|[^:[\]]*)(?::([^:]*))?$/.exec(authority.slice(at + 1));
  if (!hostPort) fail('the host must be a name, an IPv4 address or an [IPv6] address, then :PORT');
  let port: number = kind.port;
  if (hostPort[2] !== undefined) {
    if (!/^[0-9]{1,5}$/.test(hostPort[2]) || Number(hostPort[2]) < 1 || Number(hostPort[2]) > 65535)
      fail('the port must be 1-65535');
    port = Number(hostPort[2]);
  }
  const addr: BmcAddress = { protocol: kind.protocol, host: host(hostPort[1]!), port, username, password };
  if ('scheme' in kind) addr.scheme = kind.scheme;

  for (const param of m[4] ? m[4].split('&') : []) {
    const [key, value] = param.split('=');
    if (key !== 'insecure' || !['1', '0', 'true', 'false'].includes(value ?? ''))
      fail('the only query parameter is insecure=1 (or 0)');
    if (addr.scheme !== 'https') fail('insecure=1 applies to redfish:// (https) only');
    addr.insecure = value === '1' || value === 'true';
  }
  return addr;
}

/** The URL with its password replaced by ***, fit for logs and messages; also for a URL that does not parse. */
export function redactBmcUrl(url: string): string {
  // Greedy to the last '@': a password holding a raw '@' is redacted whole.
  return url.replace(/^([^:/?#]*:\/\/[^:@/?#]*:).*@/s, '$1***@');
}

/** The URL of an address, password included: for storing, never for showing. */
export function formatBmcUrl(a: BmcAddress): string {
  const scheme = a.protocol === 'ipmi' ? 'ipmi' : a.scheme === 'http' ? 'redfish+http' : 'redfish';
  const host = isIPv6(a.host) ? `[${a.host}]` : a.host;
  const query = a.insecure ? '?insecure=1' : '';
  return `${scheme}://${encodeURIComponent(a.username)}:${encodeURIComponent(a.password)}@${host}:${a.port}${query}`;
}

/** host:port, a BMC's identity: one BMC is enrolled once. */
export function bmcEndpoint(a: BmcAddress): string {
  return `${isIPv6(a.host) ? `[${a.host}]` : a.host}:${a.port}`;
}

/** The URL to show: the user name, never the password. */
export function displayBmcUrl(a: BmcAddress): string {
  const scheme = a.protocol === 'ipmi' ? 'ipmi' : a.scheme === 'http' ? 'redfish+http' : 'redfish';
  return `${scheme}://${encodeURIComponent(a.username)}@${bmcEndpoint(a)}${a.insecure ? '?insecure=1' : ''}`;
}
