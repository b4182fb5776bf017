// What the server asks of an agent on its control socket: open a stream
// (logs, exec, console) for one of its instances. See src/api/stream-hub.ts
// for the server's side and src/agent/streams.ts for the agent's.

export interface LogsRequest {
  op: 'logs';
  instance: string;
  follow: boolean;
  tail?: number | undefined;
}

export interface ExecRequest {
  op: 'exec';
  instance: string;
  command: string[];
  tty: boolean;
  stdin: boolean;
  cols?: number | undefined;
  rows?: number | undefined;
}

export interface ConsoleRequest {
  op: 'console';
  instance: string;
}

export type StreamRequest = LogsRequest | ExecRequest | ConsoleRequest;
/** What the server sends on an agent's control socket. */
export type ControlMessage = ({ type: 'open'; id: string } & StreamRequest) | { type: 'hello'; hostId: string };
