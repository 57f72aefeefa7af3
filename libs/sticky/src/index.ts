import { createHash } from 'node:crypto';

/** Sticky buckets a weighted split divides: a share of 0.2 is 2,000 of them. */
export const STICKY_BUCKETS = 10_000;

/**
 * The bucket in [0, STICKY_BUCKETS) of a key (an end user, else a request id): the edge computes
 * it once and the router assigns split arms by bucket, so one key always lands on one arm and a
 * plan can say for which buckets it holds. The first bytes of SHA-256 spread similar keys
 * ("user-1", "user-2") evenly, which short multiplicative hashes do not.
 */
export function stickyBucket(key: string): number {
  return createHash('sha256').update(key, 'utf8').digest().readUInt32BE(0) % STICKY_BUCKETS;
}
