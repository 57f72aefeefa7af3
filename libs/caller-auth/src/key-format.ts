import { randomInt } from 'node:crypto';
import { crc32 } from 'node:zlib';

/*
 * API keys as the best providers make them (GitHub's ghp_, Stripe's sk_live_): a visible prefix
 * that says what the string is (secret scanners can find it), random base62, and a CRC32 of it
 * at the end, so that a mistyped or truncated key is refused before any lookup.
 *   llmgw_ <40 base62: ~238 random bits> <6 base62: CRC32 of the 40>
 */

export const KEY_PREFIX = 'llmgw_';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BODY_CHARS = 40;
const CHECK_CHARS = 6;

function base62(n: number, width: number): string {
  let out = '';
  for (let i = 0; i < width; i++) {
    out = BASE62[n % 62]! + out;
    n = Math.floor(n / 62);
  }
  return out;
}

function checksum(body: string): string {
  return base62(crc32(body), CHECK_CHARS);
}

/** A new secret in the gateway's format. */
export function newApiKey(): string {
  let body = '';
  for (let i = 0; i < BODY_CHARS; i++) body += BASE62[randomInt(62)];
  return `${KEY_PREFIX}${body}${checksum(body)}`;
}

/**
 * True for a string that claims the gateway's format but cannot be one of its keys (wrong
 * length, foreign characters, checksum mismatch). Keys of other forms (bootstrap keys from the
 * config, keys made before this format) are not judged here.
 */
export function isMistypedKey(key: string): boolean {
  if (!key.startsWith(KEY_PREFIX)) return false;
  const rest = key.slice(KEY_PREFIX.length);
  if (rest.length !== BODY_CHARS + CHECK_CHARS || !/^[0-9A-Za-z]+$/.test(rest)) return true;
  return checksum(rest.slice(0, BODY_CHARS)) !== rest.slice(BODY_CHARS);
}

/** Characters of a secret shown after its type prefix in listings (as OpenAI and Stripe show `sk-...abcd`). */
const VISIBLE_CHARS = 4;

/**
 * What a listing may show of a secret, to tell keys apart: `llmgw_` and the next 4 characters
 * (24 of its ~238 random bits), or the first 4 characters of a key of another form.
 */
export function visiblePrefix(key: string): string {
  return key.startsWith(KEY_PREFIX) ? key.slice(0, KEY_PREFIX.length + VISIBLE_CHARS) : key.slice(0, VISIBLE_CHARS);
}
