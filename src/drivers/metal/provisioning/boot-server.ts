// The boot server of a provisioning network, on the bridge's address: iPXE
// scripts per MAC (dnsmasq points iPXE at /ipxe), the deploy kernel and
// ramdisk (/deploy/), files the conductor serves to nodes (/files/<id>:
// images, config drives, virtual-media ISOs), and the ramdisk's side of a
// boot (/ramdisk/TOKEN/hello, task, done). Nodes on that network are not
// trusted: bodies are bounded and checked, unknown tokens answer 404.
import { randomBytes } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { MAX_BODY, parseHardware, parseTaskResult, taskJson } from './protocol.ts';
import type { Session, SessionRegistry } from './sessions.ts';

/** The kernel and ramdisk scripts/metal.sh builds, by the names they are served under. */
const DEPLOY_FILES = new Set(['vmlinuz', 'initramfs.cpio.gz']);

/** Kernel arguments of every ramdisk boot: the console the BMC's serial-over-LAN shows. */
export const RAMDISK_ARGS = 'console=ttyS0,115200';

/** Files served to nodes under unguessable ids. */
export class FileTable {
  private readonly files = new Map<string, string>();

  add(path: string): string {
    const id = randomBytes(16).toString('hex');
    this.files.set(id, path);
    return id;
  }

  get(id: string): string | undefined {
    return this.files.get(id);
  }

  delete(id: string): void {
    this.files.delete(id);
  }
}

export interface BootServerOptions {
  /** The bridge's address: the server listens there only. */
  address: string;
  port: number;
  deployDir: string;
  sessions: SessionRegistry;
  files: FileTable;
}

/** The iPXE script for a MAC: the deploy ramdisk with the boot's URL, or a word that nothing is armed. */
export function ipxeScript(baseUrl: string, mac: string | null, session: Session | null): string {
  if (mac === null) return `#!ipxe\nchain ${baseUrl}/ipxe?mac=\${netX/mac}\n`;
  if (!session) return `#!ipxe\necho Strata: no boot is armed for ${mac.replace(/[^0-9A-Fa-f:-]/g, '')}\nexit\n`;
  return [
    '#!ipxe',
    `echo Strata: booting the deploy ramdisk for node ${session.nodeId.replace(/[^A-Za-z0-9._-]/g, '')}`,
    // initrd= names the ramdisk for a kernel started by UEFI (its EFI stub loads it); BIOS ignores it.
    `kernel ${baseUrl}/deploy/vmlinuz initrd=ramdisk ${RAMDISK_ARGS} strata.url=${session.url}`,
    `initrd --name ramdisk ${baseUrl}/deploy/initramfs.cpio.gz`,
    'boot',
    '',
  ].join('\n');
}

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY) throw new HttpError(413, `body over ${MAX_BODY} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, `body over ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
}

export class BootServer {
  readonly baseUrl: string;
  private readonly server: Server;
  private readonly opts: BootServerOptions;

  private constructor(server: Server, baseUrl: string, opts: BootServerOptions) {
    this.server = server;
    this.baseUrl = baseUrl;
    this.opts = opts;
  }

  /** Listens, and tells the sessions where. */
  static async start(opts: BootServerOptions): Promise<BootServer> {
    let self: BootServer | undefined;
    const server = createServer((req, res) => {
      if (!self) return void res.writeHead(503).end();
      self.handle(req, res).catch((err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500;
        const message = err instanceof Error ? err.message : String(err);
        if (!res.headersSent) res.writeHead(status, { 'content-type': 'text/plain' }).end(`${message}\n`);
        else res.destroy();
      });
    });
    server.headersTimeout = 30_000;
    server.requestTimeout = 0; // image downloads take as long as they take
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    self = new BootServer(server, `http://${opts.address}:${port}`, opts);
    opts.sessions.baseUrl = self.baseUrl;
    return self;
  }

  close(): Promise<void> {
    return new Promise(resolve => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://boot');
    const parts = url.pathname.split('/').slice(1);
    const method = req.method ?? 'GET';
    const reading = method === 'GET' || method === 'HEAD';

    if (url.pathname === '/ipxe' && reading) {
      const mac = url.searchParams.get('mac');
      const session = mac === null ? null : this.opts.sessions.forMac(mac);
      const body = ipxeScript(this.baseUrl, mac, session);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(method === 'HEAD' ? undefined : body);
      return;
    }
    if (parts.length === 2 && parts[0] === 'deploy' && reading && DEPLOY_FILES.has(parts[1]!))
      return this.sendFile(req, res, join(this.opts.deployDir, parts[1]!));
    if (parts.length === 2 && parts[0] === 'files' && reading) {
      const path = this.opts.files.get(parts[1]!);
      if (!path) throw new HttpError(404, 'no such file');
      return this.sendFile(req, res, path);
    }
    if (parts.length === 3 && parts[0] === 'ramdisk') {
      const session = this.opts.sessions.forToken(parts[1]!);
      if (!session) throw new HttpError(404, 'no such boot');
      const step = parts[2];
      if (step === 'hello' && method === 'POST') {
        const hw = parseHardware(await readJson(req));
        if (typeof hw === 'string') throw new HttpError(400, `hello: ${hw}`);
        this.opts.sessions.hello(session, hw);
        return void res.writeHead(204).end();
      }
      if (step === 'task' && method === 'GET') {
        const body = taskJson(session.task);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        return void res.end(body);
      }
      if (step === 'done' && method === 'POST') {
        const result = parseTaskResult(await readJson(req));
        if (typeof result === 'string') throw new HttpError(400, `done: ${result}`);
        session.recordDone(result);
        return void res.writeHead(204).end();
      }
    }
    throw new HttpError(404, 'not found');
  }

  private async sendFile(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    let size: number;
    try {
      const st = statSync(path);
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
    } catch {
      throw new HttpError(404, 'no such file');
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    if (req.method === 'HEAD' || size === 0) return void res.end();
    await pipeline(createReadStream(path, { start: 0, end: Math.max(0, size - 1) }), res).catch(() => {
      res.destroy(); // the node hung up, or the file shrank: the short body tells it
    });
  }
}
