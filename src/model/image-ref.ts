// OCI image references, by the grammar of the distribution project
// (github.com/distribution/reference, regexp.go):
//
//   reference := name [ ":" tag ] [ "@" digest ]
//   name      := [ domain "/" ] path-component [ "/" path-component ]*
//   domain    := host [ ":" port ]      host: DNS name, IPv4, or [IPv6]
//   path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//   tag       := [\w][\w.-]{0,127}
//   digest    := algorithm ":" hex{32,}
//
// Nothing else reaches a runtime or a registry: no "..", no "?", no "#", no
// upper case in the path, no spaces. The API checks it; drivers check again.

const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domain = `(?:${domainComponent}(?:\\.${domainComponent})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]{1,5})?`;
const pathComponent = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const name = `(?:${domain}/)?${pathComponent}(?:/${pathComponent})*`;
const tag = '[\\w][\\w.-]{0,127}';
const digest = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';

/** The whole grammar as one anchored pattern (JSON Schema `pattern`, no flags needed). */
export const IMAGE_REF_PATTERN = `^${name}(?::${tag})?(?:@${digest})?$`;

/** Longest reference accepted: the grammar's 255-character name, a tag and a sha512 digest. */
export const IMAGE_REF_MAX_LENGTH = 512;

const re = new RegExp(IMAGE_REF_PATTERN);

export function isImageRef(ref: string): boolean {
  return ref.length <= IMAGE_REF_MAX_LENGTH && re.test(ref) && nameOf(ref).length <= 255;
}

/** The reference without its tag and digest. */
function nameOf(ref: string): string {
  const at = ref.indexOf('@');
  const noDigest = at >= 0 ? ref.slice(0, at) : ref;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/** Throws unless `ref` is an OCI image reference; for drivers, before a reference reaches a runtime. */
export function assertImageRef(ref: string): void {
  if (!isImageRef(ref))
    throw new Error(`image ${JSON.stringify(ref.slice(0, 200))} is not a valid OCI image reference`);
}
