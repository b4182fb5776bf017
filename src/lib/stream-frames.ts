// The framing of log and exec streams on WebSockets, between the CLI (or any
// client), the server and the agent. Every binary message starts with a
// channel byte, like Kubernetes' channel.k8s.io protocol:
//
//   0 stdin    client -> agent   bytes for the process's standard input
//   1 stdout   agent  -> client  bytes the process wrote
//   2 stderr   agent  -> client
//   3 status   agent  -> client  JSON: {"ok":true} once the stream is open,
//                                {"exitCode":N} when an exec ends,
//                                {"error":{"code","message"}} when it cannot go on
//   4 resize   client -> agent   JSON: {"cols":N,"rows":N} (exec with a TTY)
//   5 eof      client -> agent   no payload: standard input is closed

export const Channel = {
  stdin: 0,
  stdout: 1,
  stderr: 2,
  status: 3,
  resize: 4,
  eof: 5,
} as const;
export type ChannelId = (typeof Channel)[keyof typeof Channel];

export interface StreamStatus {
  ok?: true;
  exitCode?: number;
  error?: { code: string; message: string };
}

export function frame(channel: ChannelId, payload?: Uint8Array | string): Buffer {
  const body = payload === undefined ? Buffer.alloc(0) : typeof payload === 'string' ? Buffer.from(payload) : payload;
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = channel;
  out.set(body, 1);
  return out;
}

export const statusFrame = (s: StreamStatus): Buffer => frame(Channel.status, JSON.stringify(s));

export interface Frame {
  channel: number;
  payload: Buffer;
}

/** Splits a received message; an empty message has no channel and is refused. */
export function parseFrame(data: Buffer | ArrayBuffer | Buffer[]): Frame | undefined {
  const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  if (buf.length === 0) return undefined;
  return { channel: buf[0]!, payload: buf.subarray(1) };
}

export function parseStatus(payload: Buffer): StreamStatus {
  try {
    const v = JSON.parse(payload.toString('utf8')) as unknown;
    return typeof v === 'object' && v !== null ? (v as StreamStatus) : {};
  } catch {
    return {};
  }
}
