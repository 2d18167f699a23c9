// Types of memshelf/redis, the read-through helper over ioredis.
// Hand-written for redis.js; test/typedefs.test.js checks every member
// against the runtime. Structural: no dependency on ioredis's types (any
// object with the ioredis methods used is accepted).
import type { Cache, Key, NodeBuffer } from './index.js';

/** What NearCache uses of an ioredis client (`Redis` or `Cluster`). */
export interface IoredisLike {
  multi(): unknown;
  getBuffer(key: Key): Promise<unknown>;
  set(key: Key, value: string | Uint8Array | number, ...args: any[]): Promise<unknown>;
  del(...keys: Key[]): Promise<number>;
}

/** Options of `new NearCache(redis, cache, options)`, in seconds. */
export interface NearCacheOptions {
  /** TTL of a value whose Redis key has none (default 60; 0: the segment's default TTL, else never). */
  defaultTtl?: number;
  /** How long a fill may take before a waiting process takes over (default 10). */
  lease?: number;
  /** Cache a key Redis does not have that long (default: not cached). */
  negativeTtl?: number;
}

/** memshelf as a host-wide near-cache in front of an ioredis client. */
export class NearCache<R extends IoredisLike = IoredisLike> {
  /** `cache` must use the raw codec. */
  constructor(redis: R, cache: Cache<'raw'>, options?: NearCacheOptions);
  /** The ioredis client. */
  readonly redis: R;
  /** The memshelf segment. */
  readonly cache: Cache<'raw'>;
  /** The segment's entry, or Redis's value (then stored with its remaining Redis TTL); null if Redis has none. */
  get(key: Key): Promise<NodeBuffer | null>;
  /** `get` of every key, with one Redis round trip for the misses. */
  getMany(keys: Key[]): Promise<Array<NodeBuffer | null>>;
  /** Redis SET (extra arguments as ioredis's: `'EX', 10`...), then deletes key locally; Redis's answer. */
  set(key: Key, value: string | Uint8Array | number, ...args: Array<string | number>): Promise<'OK' | null>;
  /** Redis DEL, then deletes the keys locally; how many Redis had. */
  del(...keys: Key[]): Promise<number>;
}

export default NearCache;
