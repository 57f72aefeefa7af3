import {
  Metadata,
  type ChannelCredentials,
  type CallOptions,
  type ChannelOptions,
  type ClientOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { AppError } from '@llmgw/errors';
import { tracingOn } from '@llmgw/tracing';
import { REQUEST_ID_HEADER, TENANT_ID_HEADER } from './context.js';
import { PLAINTEXT, type ChannelLink } from './mesh-tls.js';
import { fromServiceError } from './status-map.js';
import { traceClientCalls } from './tracing.js';

const CLIENT_OPTIONS: ChannelOptions = {
  'grpc.enable_channelz': 0,
  // Transparent retries buffer every message; our calls are retried, if at all, by policy code.
  'grpc.enable_retries': 0,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
  // Calls take turns over every address the name resolves to (a headless Service lists each ready
  // pod), instead of pick_first's one connection to the first. Servers' max connection age makes
  // the channel resolve again, which is how it finds new replicas.
  'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
};

type ClientConstructor<C> = new (address: string, creds: ChannelCredentials, options?: ClientOptions) => C;

/**
 * One long-lived channel per dependency; grpc-js multiplexes calls over it, balanced round robin
 * over the addresses `address` resolves to (DNS by default; `ipv4:a:p,b:q` lists them). `link`: from
 * MeshTransport.channelTo. While tracing is on, each call is a CLIENT span carrying its context.
 */
export function dial<C>(Ctor: ClientConstructor<C>, address: string, link: ChannelLink = PLAINTEXT.channelTo('')): C {
  return new Ctor(address, link.credentials, { ...CLIENT_OPTIONS, ...link.options, ...(tracingOn() ? { interceptors: [traceClientCalls] } : {}) });
}

export interface CallOpts {
  /** Every outgoing call has a deadline. */
  timeoutMs: number;
  requestId?: string;
  tenantId?: string;
  /** Extra metadata to forward, e.g. the caller's authorization for a proxied call. */
  metadata?: Record<string, string>;
  signal?: AbortSignal;
}

export function callMetadata(opts: CallOpts): Metadata {
  const md = new Metadata();
  if (opts.requestId) md.set(REQUEST_ID_HEADER, opts.requestId);
  if (opts.tenantId) md.set(TENANT_ID_HEADER, opts.tenantId);
  for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
  return md;
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** Calls a unary method with a deadline; failures come back as AppError with the remote status. */
export function callUnary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, opts: CallOpts): Promise<Res> {
  if (opts.signal?.aborted) return Promise.reject(new AppError('cancelled', 'call cancelled'));
  return new Promise((resolve, reject) => {
    const call = method(request, callMetadata(opts), { deadline: Date.now() + Math.max(1, opts.timeoutMs) }, (err, res) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) reject(fromServiceError(err));
      else resolve(res);
    });
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

type StreamMethod<Req, Res> = (request: Req, metadata: Metadata, options: Partial<CallOptions>) => ClientReadableStream<Res>;

/**
 * Calls a server-streaming method. Iterating pulls messages as they come (grpc-js pauses the
 * HTTP/2 stream when we stop reading); breaking out of the loop or aborting cancels the call.
 */
export async function* callStream<Req, Res>(method: StreamMethod<Req, Res>, request: Req, opts: CallOpts): AsyncGenerator<Res> {
  const call = method(request, callMetadata(opts), { deadline: Date.now() + Math.max(1, opts.timeoutMs) });
  const onAbort = () => call.cancel();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let finished = false;
  try {
    for await (const msg of call as AsyncIterable<Res>) yield msg;
    finished = true;
  } catch (err) {
    finished = true;
    throw fromServiceError(err);
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    if (!finished) call.cancel();
  }
}
