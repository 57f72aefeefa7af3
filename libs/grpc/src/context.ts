import { randomUUID } from 'node:crypto';
import { Metadata, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import { AppError } from '@llmgw/errors';
import type { Logger } from '@llmgw/logging';

export const REQUEST_ID_HEADER = 'x-request-id';
export const TENANT_ID_HEADER = 'x-tenant-id';

/** What a handler knows about its call besides the request message. */
export interface CallContext {
  requestId: string;
  /** Set by the edge on internal calls; empty on public calls until auth has run. */
  tenantId: string;
  method: string;
  /** The full gRPC method path (`/llmgateway.quota.v1.QuotaService/ReserveQuota`); '' on the HTTP surface. */
  path: string;
  metadata: Metadata;
  /** Aborted when the caller cancels or its deadline passes. */
  signal: AbortSignal;
  /** Milliseconds left before the caller's deadline; Infinity when it set none. */
  remainingMs(): number;
  /** Child logger with requestId, rpc and (once known) tenantId on every line. */
  readonly logger: Logger;
  /** Records the tenant once a public entry has authenticated the caller; later log lines carry it. */
  setTenant(tenantId: string): void;
  /** Adds a trailer to a successful response (errors carry their own, from AppError). */
  setTrailer(key: string, value: string): void;
  /** Trailers set so far, if any. */
  readonly trailers: Metadata | undefined;
}

export interface HandlerOptions {
  /**
   * A public entry point assigns its own request id (a client's x-request-id is only logged) and
   * ignores x-tenant-id: ids that key quota and usage must not be chosen by callers.
   */
  publicEntry?: boolean;
}

export function createCallContext(
  call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>,
  method: string,
  logger: Logger,
  opts: HandlerOptions = {},
): { ctx: CallContext; finished(): void } {
  const metadata = call.metadata;
  const incomingId = metadataValue(metadata, REQUEST_ID_HEADER);
  const controller = new AbortController();
  // An AppError, so that a handler which rethrows it answers CANCELLED instead of logging an unhandled error.
  const onCancelled = () => controller.abort(new AppError('cancelled', 'call cancelled by the caller'));
  call.once('cancelled', onCancelled);
  const deadline = call.getDeadline();
  const ctx = callContext({
    method,
    path: call.getPath(),
    logger,
    metadata,
    signal: controller.signal,
    deadlineMs: deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? Number(deadline) : Infinity,
    requestId: (!opts.publicEntry && incomingId) || randomUUID(),
    tenantId: opts.publicEntry ? '' : metadataValue(metadata, TENANT_ID_HEADER),
    clientRequestId: opts.publicEntry ? incomingId : '',
  });
  // grpc-js reports a call's stream closing after its status as cancelled too; nothing is left to
  // abort then, and an error (with its stack) per call is not free.
  return { ctx, finished: () => call.off('cancelled', onCancelled) };
}

export interface CallContextInit {
  method: string;
  /** The full gRPC method path; none on the HTTP surface. */
  path?: string;
  logger: Logger;
  metadata: Metadata;
  signal: AbortSignal;
  /** Epoch ms; Infinity for none. */
  deadlineMs: number;
  requestId: string;
  tenantId: string;
  /** A public caller's own request id, logged beside ours. */
  clientRequestId: string;
}

/** A call's context from its parts: the gRPC adapters and the edge's HTTP surface both build one. */
export function callContext(init: CallContextInit): CallContext {
  const { requestId, tenantId, deadlineMs, logger } = init;
  const fields: Record<string, string> = { requestId, rpc: init.method };
  if (tenantId) fields.tenantId = tenantId;
  if (init.clientRequestId) fields.clientRequestId = init.clientRequestId;
  // Most calls log nothing: build the child logger only when it is first used.
  let child: Logger | undefined;
  let trailers: Metadata | undefined;
  return {
    requestId,
    tenantId,
    method: init.method,
    path: init.path ?? '',
    metadata: init.metadata,
    signal: init.signal,
    remainingMs: () => (deadlineMs === Infinity ? Infinity : deadlineMs - Date.now()),
    get logger() {
      child ??= logger.child(fields);
      return child;
    },
    setTenant(id: string) {
      this.tenantId = id;
      fields.tenantId = id;
      child = undefined;
    },
    get trailers() {
      return trailers;
    },
    setTrailer(key: string, value: string) {
      (trailers ??= new Metadata()).set(key, value);
    },
  };
}

export function metadataValue(metadata: Metadata, key: string): string {
  const v = metadata.get(key)[0];
  return typeof v === 'string' ? v : v === undefined ? '' : v.toString();
}
