// A machine's serial console as a BMC offers it: open whether the machine runs
// or not, showing what the machine prints from the moment a client connects.
// What the machine prints is read from its serial log, not from its console
// socket: under TCG, QEMU accepts a connection to that socket only when the
// firmware lets its main loop run (~2 s into a boot here), and drops what the
// guest printed before. Keys go to the socket, where the kernel holds them
// until QEMU accepts. ipmi_sim connects to its SOL port once (retrying only
// every 10 s): the relay is always there for it.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

/** How often a client's log is looked at for new output. */
const FOLLOW_MS = 100;
const CHUNK = 64 * 1024;

export interface SerialRelay {
  port: number;
  close(): Promise<void>;
}

const sizeOf = (path: string): number => {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
};

export async function startSerialRelay(o: { log: string; machinePort: number }): Promise<SerialRelay> {
  const clients = new Set<Socket>();
  const server = createServer(client => {
    clients.add(client);
    let at = sizeOf(o.log);
    const follow = setInterval(() => {
      if (client.writableLength > CHUNK) return; // a slow reader: wait for it
      const size = sizeOf(o.log);
      if (size < at) at = 0; // the log was replaced
      if (size === at) return;
      const fd = openSync(o.log, 'r');
      try {
        const buf = Buffer.alloc(Math.min(size - at, CHUNK));
        const n = readSync(fd, buf, 0, buf.length, at);
        at += n;
        client.write(buf.subarray(0, n));
      } finally {
        closeSync(fd);
      }
    }, FOLLOW_MS);
    let machine: Socket | undefined;
    client.on('data', keys => {
      if (!machine || machine.destroyed) {
        machine = connect({ host: '127.0.0.1', port: o.machinePort });
        machine.on('error', () => {});
        machine.resume(); // its output comes through the log
      }
      // Keys typed while the machine is off go nowhere, as on a real serial line.
      machine.write(keys);
    });
    client.on('error', () => {});
    client.on('close', () => {
      clients.delete(client);
      clearInterval(follow);
      machine?.destroy();
    });
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>(resolve => {
        for (const c of clients) c.destroy();
        server.close(() => resolve());
      }),
  };
}
