// Whole-disk image URLs: what a bare-metal instance may give as its image in
// place of an OCI reference (a raw or qcow2 disk, Ironic's image_source).
//
//   url   := ("http" | "https") "://" host [ ":" port ] [ path ] [ "?" query ]
//   host  := DNS name | IPv4 | "[" IPv6 "]"
//
// No user information (it would be stored and shown with the instance: a
// presigned URL carries its credential in the query instead), no fragment,
// nothing outside RFC 3986's printable characters: the URL only ever reaches
// the conductor's HTTP client, never a shell.

const label = '[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
const host = `(?:${label}(?:\\.${label})*|\\[[0-9A-Fa-f:.]+\\])`;
const pchar = "[A-Za-z0-9._~!$&'()*+,;=:@%-]";
const path = `(?:/${pchar}*)*`;
const query = `(?:\\?(?:${pchar}|[/?])*)?`;

/** The grammar as one anchored pattern (JSON Schema `pattern`, no flags needed). */
export const DISK_URL_PATTERN = `^https?://${host}(?::[0-9]{1,5})?${path}${query}$`;

/** Longest URL accepted: room for a presigned object-store URL. */
export const DISK_URL_MAX_LENGTH = 2048;

const re = new RegExp(DISK_URL_PATTERN);

export function isDiskImageUrl(s: string): boolean {
  if (s.length > DISK_URL_MAX_LENGTH || !re.test(s)) return false;
  try {
    const u = new URL(s);
    return u.port === '' || Number(u.port) <= 65535;
  } catch {
    return false;
  }
}
