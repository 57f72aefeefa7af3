import { createHash, randomBytes } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';

/** Keys are only ever kept as the hex SHA-256 of the secret; lookups are by digest. */
export function hashKey(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** A new public key id (not secret; safe to log). */
export function newKeyId(): string {
  return `key-${randomBytes(9).toString('base64url')}`;
}

/** The key in `authorization: Bearer <key>`, or '' when absent. */
export function bearerToken(metadata: Metadata): string {
  const raw = metadata.get('authorization')[0];
  const value = typeof raw === 'string' ? raw : raw === undefined ? '' : raw.toString();
  const m = /^Bearer\s+(\S+)\s*$/i.exec(value);
  return m?.[1] ?? '';
}
