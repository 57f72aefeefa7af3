/** What went wrong, in the caller's terms; libs/grpc maps each kind to one gRPC status. */
export type ErrorKind =
  | 'invalid_argument'
  | 'unauthenticated'
  | 'permission_denied'
  | 'not_found'
  | 'failed_precondition'
  | 'resource_exhausted'
  | 'unavailable'
  | 'deadline_exceeded'
  | 'cancelled'
  | 'internal';

export interface AppErrorOptions extends ErrorOptions {
  retryAfterMs?: number;
  /** Extra trailers for the caller, e.g. x-ratelimit-*; bytes for `-bin` keys. Never secrets. */
  trailers?: Record<string, string | Uint8Array>;
}

/** An error whose message is safe to show the caller. Anything else becomes a generic INTERNAL. */
export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly opts: AppErrorOptions = {},
  ) {
    super(message, opts);
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Longest caller-supplied value an error message repeats (in UTF-16 units; the rest is elided). */
export const MAX_ECHOED_CHARS = 64;

/**
 * A caller-supplied value for an error message or a log line: quoted, and cut to
 * MAX_ECHOED_CHARS with the elided length named, so that a huge route name cannot make the error
 * bigger than the request (or than gRPC's metadata limit).
 */
export function quoted(value: string): string {
  if (value.length <= MAX_ECHOED_CHARS) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, MAX_ECHOED_CHARS))}… (${value.length - MAX_ECHOED_CHARS} more characters)`;
}

/** The longest message a caller is sent: a last guard, since status details travel in metadata. */
export const MAX_ERROR_MESSAGE_CHARS = 1_024;
