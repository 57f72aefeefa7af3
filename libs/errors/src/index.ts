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
