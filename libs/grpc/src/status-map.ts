import { Metadata, status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { AppError, isAppError, MAX_ERROR_MESSAGE_CHARS, type ErrorKind } from '@llmgw/errors';
import type { Logger } from '@llmgw/logging';
import { ErrorKind as ProtoErrorKind } from '@llmgw/proto/executor';

/** The one table from error kind to gRPC status. */
const KIND_TO_STATUS: Record<ErrorKind, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
  not_found: status.NOT_FOUND,
  failed_precondition: status.FAILED_PRECONDITION,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  cancelled: status.CANCELLED,
  internal: status.INTERNAL,
};

/** The internal protos' typed error kind, one to one with ours. */
const KIND_TO_PROTO: Record<ErrorKind, ProtoErrorKind> = {
  invalid_argument: ProtoErrorKind.ERROR_KIND_INVALID_ARGUMENT,
  unauthenticated: ProtoErrorKind.ERROR_KIND_UNAUTHENTICATED,
  permission_denied: ProtoErrorKind.ERROR_KIND_PERMISSION_DENIED,
  not_found: ProtoErrorKind.ERROR_KIND_NOT_FOUND,
  failed_precondition: ProtoErrorKind.ERROR_KIND_FAILED_PRECONDITION,
  resource_exhausted: ProtoErrorKind.ERROR_KIND_RESOURCE_EXHAUSTED,
  unavailable: ProtoErrorKind.ERROR_KIND_UNAVAILABLE,
  deadline_exceeded: ProtoErrorKind.ERROR_KIND_DEADLINE_EXCEEDED,
  cancelled: ProtoErrorKind.ERROR_KIND_CANCELLED,
  internal: ProtoErrorKind.ERROR_KIND_INTERNAL,
};

const PROTO_TO_KIND = new Map<ProtoErrorKind, ErrorKind>(Object.entries(KIND_TO_PROTO).map(([kind, p]) => [p, kind as ErrorKind]));

export function errorKindToProto(kind: ErrorKind): ProtoErrorKind {
  return KIND_TO_PROTO[kind];
}

/** An unset or unknown kind is treated as UNAVAILABLE: the execution failed, we do not know why. */
export function errorKindFromProto(kind: ProtoErrorKind): ErrorKind {
  return PROTO_TO_KIND.get(kind) ?? 'unavailable';
}

const STATUS_TO_KIND = new Map<number, ErrorKind>(
  Object.entries(KIND_TO_STATUS).map(([kind, code]) => [code, kind as ErrorKind]),
);

export const RETRY_AFTER_TRAILER = 'retry-after-ms';

export function statusOf(kind: ErrorKind): status {
  return KIND_TO_STATUS[kind];
}

/** Maps any thrown value to a status for the caller. Only AppError messages reach the caller. */
export function toStatusObject(err: unknown, logger: Logger): Partial<StatusObject> {
  if (isAppError(err)) {
    const metadata = new Metadata();
    if (err.opts.retryAfterMs !== undefined) metadata.set(RETRY_AFTER_TRAILER, String(Math.ceil(err.opts.retryAfterMs)));
    for (const [k, v] of Object.entries(err.opts.trailers ?? {})) metadata.set(k, typeof v === 'string' ? v : Buffer.from(v));
    return { code: statusOf(err.kind), details: capped(err.message), metadata };
  }
  logger.error({ err }, 'unhandled error');
  return { code: status.INTERNAL, details: 'internal error', metadata: new Metadata() };
}

/** Turns a client-side gRPC error back into an AppError, keeping code, message and retry-after. */
export function fromServiceError(err: unknown): AppError {
  if (isAppError(err)) return err;
  if (isServiceError(err)) return fromStatus(err.code, err.details || err.message, err.metadata?.getMap() ?? {}, err);
  return new AppError('internal', 'internal error', { cause: err });
}

/** A remote call's status (code, message, trailers) as the AppError its caller gets. */
export function fromStatus(code: number, message: string, trailerMap: Record<string, string | Buffer>, cause?: unknown): AppError {
  const kind = STATUS_TO_KIND.get(code) ?? (code === status.UNKNOWN ? 'internal' : 'unavailable');
  const retry = trailerMap[RETRY_AFTER_TRAILER];
  const trailers: Record<string, string | Uint8Array> = {};
  for (const [k, v] of Object.entries(trailerMap)) {
    if (k.startsWith('x-ratelimit-') && typeof v === 'string') trailers[k] = v;
  }
  return new AppError(kind, message, {
    cause,
    retryAfterMs: typeof retry === 'string' ? Number(retry) : undefined,
    trailers,
  });
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'details' in err;
}

function capped(message: string): string {
  return message.length <= MAX_ERROR_MESSAGE_CHARS ? message : `${message.slice(0, MAX_ERROR_MESSAGE_CHARS)}…`;
}
