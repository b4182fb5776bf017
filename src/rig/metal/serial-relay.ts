// Between ipmi_sim's serial-over-LAN and a machine's serial socket. ipmi_sim
// connects to its SOL port once and, when that fails or closes, retries only
// every 10 s; a machine's socket exists only while its QEMU runs. The relay
// always accepts, and joins each client to the machine whenever it runs
// (trying every 250 ms while it does not): SOL sees a boot from its start.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

const RETRY_MS = 250;

export interface SerialRelay {
  port: number;
  close(): Promise<void>;
}

export async function startSerialRelay(machinePort: number): Promise<SerialRelay> {
  const clients = new Set<Socket>();
  const server = createServer(client => {
    clients.add(client);
    let machine: Socket | undefined;
    let timer: NodeJS.Timeout | undefined;
    const join = () => {
      timer = undefined;
      if (client.destroyed) return;
      const m = connect({ host: '127.0.0.1', port: machinePort });
      m.on('connect', () => {
        machine = m;
        m.pipe(client, { end: false });
      });
      m.on('error', () => {});
      m.on('close', () => {
        machine = undefined;
        if (!client.destroyed) timer = setTimeout(join, RETRY_MS);
      });
    };
    // Keys typed while the machine is off go nowhere, as on a real serial line.
    client.on('data', d => machine?.write(d));
    client.on('error', () => {});
    client.on('close', () => {
      clients.delete(client);
      clearTimeout(timer);
      machine?.destroy();
    });
    join();
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
