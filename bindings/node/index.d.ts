// Type declarations for memshelf's Node.js addon. Hand-written for the
// JavaScript wrapper in index.js; test/typedefs.test.js checks them member
// by member against the loaded module (exports, Cache members, Stats
// fields, option names), and scripts/test-node.sh compiles a user file that
// uses every feature with `tsc --strict`, with and without @types/node.
//
// No dependency on @types/node: where it is loaded, values are Node's
// `Buffer`; without it they are typed as the `Uint8Array` they extend.

/** Node's `Buffer` when @types/node is loaded, else `Uint8Array`. */
export type NodeBuffer = typeof globalThis extends { Buffer: { alloc(size: number): infer B } } ? B : Uint8Array;

/** A key: a string (stored as UTF-8) or bytes. 1 to 4096 bytes. */
export type Key = string | Uint8Array;
/** A value: a string (stored as UTF-8) or bytes, up to `maxValueSize`. */
export type Value = string | Uint8Array;

/**
 * Errors thrown by memshelf carry `code`:
 * - `TypeError` (code `ERR_INVALID_ARG_TYPE`): an argument of the wrong type;
 *   (code `ERR_INVALID_ARG_VALUE`): a string key, value, tag or prefix with a
 *   lone surrogate (not valid UTF-16), or an unknown `codec`.
 * - `RangeError` (code `InvalidName`, `KeyTooLong`, `ValueTooLarge`,
 *   `InvalidTtl` or `InvalidArgument`): a value outside its limits.
 * - `Error` (code `NotFound`, `NotAnInteger`, `IncompatibleSegment`,
 *   `NoSpace`, `Io`, `Timeout` or `Closed`): anything else; with the json
 *   codec, code `CodecError` for a stored value that is not JSON.
 */
export interface MemshelfError extends Error {
  code: string;
}

/** Options of `new Cache(name, options)`; `C` is the codec (default `'raw'`). */
export interface OpenOptions<C extends Codec = 'raw'> {
  /** Total bytes of the segment, e.g. `67108864` or `'64MiB'` (default 64 MiB). Used only when creating. */
  capacity?: number | string;
  /** `true` (default): create if absent, else attach. `false`: attach only (`NotFound` if absent). */
  create?: boolean;
  /** Permission bits of a created segment (default `0o600`). */
  mode?: number;
  /** Default TTL in seconds for puts that give none (set at creation; default none). */
  ttl?: number;
  /** Spread every TTL uniformly by plus or minus this fraction (0 to 0.5). */
  ttlJitter?: number;
  /** Largest value accepted, bytes or a size string (default 1 MiB, lowered to what the segment holds). */
  maxValueSize?: number | string;
  /**
   * Key + value bytes of a typical entry, for which the index is sized
   * (default 128; set at creation): 4 index slots of 8 bytes per entry of
   * this size. Much smaller entries get fewer slots each (evicted keys are
   * forgotten sooner, and below about a third of it the index cannot hold
   * every entry the segment could); much larger ones leave slots unused.
   */
  expectedEntrySize?: number | string;
  /** Map this file (tmpfs or disk) instead of `/dev/shm/memshelf.<name>`. */
  path?: string;
  /**
   * How values are encoded: `'raw'` (default: strings and bytes in, Buffers
   * out) or `'json'` (any JSON-serialisable value in, `JSON.parse`d values
   * out of `get`, `getMany` and `getOrSet`). A property of this handle
   * only: the bytes in the segment are the UTF-8 JSON text.
   */
  codec?: C;
}

/** A value codec: see `OpenOptions.codec`. */
export type Codec = 'raw' | 'json';

/** Options of `put` and `add`. */
export interface PutOptions {
  /** Seconds until expiry; 0 or absent: the segment's default TTL (else never). */
  ttl?: number;
  /** Tags for `invalidateTag` (at most 8). */
  tags?: Array<string | Uint8Array>;
}

/** Options of `putMany`. */
export interface PutManyOptions {
  /** Seconds until expiry for every item; 0 or absent: the segment's default TTL (else never). */
  ttl?: number;
}

/** What `get` returns for a codec. */
export type Decoded<C extends Codec> = C extends 'json' ? unknown : NodeBuffer;
/** What `put` takes for a codec. */
export type Encodable<C extends Codec> = C extends 'json' ? unknown : Value;

/** Options of `incr`. */
export interface IncrOptions {
  /** A TTL (seconds) other than the default also resets the entry's expiry. */
  ttl?: number;
}

/** Options of `getOrSet`. */
export interface GetOrSetOptions {
  /** Seconds the stored value lives (default: the segment's default TTL). */
  ttl?: number;
  /** Seconds the leader may take before a waiter takes over (default 10). */
  lease?: number;
  /** Keep the entry this many seconds past its TTL and serve it stale while one caller refreshes it. */
  grace?: number;
  /** A factory result of `null`/`undefined` is cached as an absence for this many seconds. */
  negativeTtl?: number;
  /** Tags of the stored value. */
  tags?: Array<string | Uint8Array>;
}

/** Segment-wide statistics (all processes); the SPEC's field names. */
export interface Stats {
  capacity_bytes: number;
  used_bytes: number;
  data_bytes: number;
  entries: number;
  ghosts: number;
  index_slots: number;
  hits: number;
  misses: number;
  inserts: number;
  updates: number;
  deletes: number;
  evictions: number;
  expirations: number;
  get_or_set_waits: number;
  promotions: number;
  moved_to_main: number;
  reinsertions: number;
  ghost_hits: number;
  lock_takeovers: number;
  lease_takeovers: number;
  max_value_size: number;
  layout_version: number;
  /** Sampled gets (one in 64 per thread) in the latency histogram. */
  get_samples: number;
  /** Sampled get latency quantiles in ns (log2 bucket upper bounds; 0 without samples). */
  get_p50_ns: number;
  get_p99_ns: number;
  /** Sampled writes (put, add, incr, fills). */
  put_samples: number;
  put_p50_ns: number;
  put_p99_ns: number;
  /** The hottest key's share of the sampled hits (0-1): hot-key skew. */
  hot_key_share: number;
}

/** One of `hotKeys()`: a key with its sampled hit count. */
export interface HotKey {
  /** The key decoded as UTF-8 (invalid bytes as U+FFFD). */
  key: string;
  /** The key's bytes. */
  keyBuffer: NodeBuffer;
  /** Sampled hits (a Misra-Gries count: a lower bound, relative to the others). */
  count: number;
}

/** What `dump()` wrote. */
export interface DumpReport {
  entries: number;
  bytes: number;
  /** Listed keys gone (deleted, expired, evicted) by the time they were read. */
  vanished: number;
}

/** What `load()` did. */
export interface LoadReport {
  /** Valid records read (the valid prefix). */
  records: number;
  /** Entries inserted. */
  loaded: number;
  /** Records skipped because their TTL passed since the dump. */
  expired: number;
  /** Records skipped because the key has a live entry (never overwritten). */
  kept_newer: number;
  /** Records this segment refused (a value above its max_value_size...). */
  rejected: number;
  /** Records the dump announces; null when its writer did not finish. */
  expected: number | null;
  /** Records after the first truncated or corrupt one. */
  skipped: number;
  /** Whether the dump was read to its announced end with nothing amiss. */
  complete: boolean;
  /** Why the valid prefix ends early ("truncated at byte N"...), if it does. */
  problem: string | null;
}

/**
 * A handle on a named shared-memory segment (`/dev/shm/memshelf.<name>`),
 * shared by every process and worker thread that opens the same name.
 * `C` is the value codec, inferred from `options.codec`.
 *
 * ```ts
 * import { Cache } from 'memshelf';
 * const cache = new Cache('sessions', { capacity: '256MiB' });
 * cache.put('user:42', JSON.stringify({ name: 'Ada' }), { ttl: 60 });
 * cache.getString('user:42'); // '{"name":"Ada"}'
 * const json = new Cache('sessions', { codec: 'json' });
 * json.put('user:43', { name: 'Grace' });
 * json.get('user:43'); // { name: 'Grace' }
 * ```
 */
export class Cache<C extends Codec = 'raw'> {
  /**
   * Opens (creates or attaches) segment `name`: 1-200 characters of
   * `[A-Za-z0-9._-]`, not starting with `.`.
   */
  constructor(name: string, options?: OpenOptions<C>);
  /** The segment's name. */
  readonly name: string;
  /** The segment's real capacity in bytes (fixed by its creator). */
  readonly capacity: number;
  /** Largest value this segment accepts, in bytes. */
  readonly maxValueSize: number;
  /** This handle's value codec. */
  readonly codec: C;
  /** Whether `close()` was called. */
  readonly closed: boolean;

  /**
   * The value, or `null` on a miss: a Buffer (its own copy of the bytes), or
   * with the json codec the parsed value (a stored JSON `null` also reads as
   * `null`: use `has`).
   */
  get(key: Key): Decoded<C> | null;
  /** The value decoded as UTF-8, or `null` (the fastest read for text; ignores the codec). */
  getString(key: Key): string | null;
  /**
   * Copies the value into `buf` without allocating (ignores the codec).
   * Returns the value's length if it fit (`<= buf.length`), `-1` on a miss,
   * or the needed length (`> buf.length`, nothing copied) if `buf` is too
   * small. The value is copied straight into `buf`: on a miss its bytes are
   * unspecified; bytes past the value's length are never written.
   */
  getInto(key: Key, buf: Uint8Array): number;
  /** Whether `key` has a live entry (counts as a get). */
  has(key: Key): boolean;
  /** The values of `keys` in order, `null` for each miss: one call for many keys. */
  getMany(keys: readonly Key[]): Array<Decoded<C> | null>;
  /** Inserts or replaces `key`. */
  put(key: Key, value: Encodable<C>, options?: PutOptions): void;
  /**
   * Inserts or replaces every `[key, value]` pair, in order, in one call. The
   * first item refused (a key or value out of its limits) throws; the items
   * before it stay stored.
   */
  putMany(items: Iterable<readonly [Key, Encodable<C>]>, options?: PutManyOptions): void;
  /** Inserts `key` only if it has no live entry; returns whether it did. */
  add(key: Key, value: Encodable<C>, options?: PutOptions): boolean;
  /** Removes `key`; returns whether it was present. */
  delete(key: Key): boolean;
  /**
   * Atomically adds `delta` (default 1) to the ASCII decimal integer at
   * `key` (missing counts as 0) and returns the new value, as a `bigint`
   * beyond 2^53. Throws `NotAnInteger` for a non-integer value.
   */
  incr(key: Key, delta?: number | bigint, options?: IncrOptions): number | bigint;
  /** Remaining seconds, `Infinity` for no expiry, `null` if absent. */
  ttl(key: Key): number | null;
  /** Gives a present key a new TTL (seconds); returns whether it was present. */
  touch(key: Key, ttl: number): boolean;
  /** Every entry put with `tag` becomes a miss, in O(1). */
  invalidateTag(tag: string | Uint8Array): void;
  /** Removes every key starting with `prefix` (a scan); returns how many. */
  deletePrefix(prefix: string | Uint8Array): number;
  /** Every entry becomes a miss, in O(1). */
  clear(): void;
  /** Live keys (with `prefix`) decoded as UTF-8; best effort under concurrent writes. */
  keys(prefix?: string | Uint8Array): string[];
  /** Live keys (with `prefix`) as Buffers (for binary keys). */
  keyBuffers(prefix?: string | Uint8Array): NodeBuffer[];
  /** Segment-wide statistics, sampled latency and hot-key share. */
  stats(): Stats;
  /** The `n` (default 10) keys with the most sampled hits still present, hottest first. */
  hotKeys(n?: number): HotKey[];
  /** Writes every live entry to the file `path` (replaced atomically). */
  dump(path: string): DumpReport;
  /**
   * Inserts the entries of a dump, never over a live entry; expired ones
   * are skipped; a truncated dump loads its valid prefix (see `problem`).
   */
  load(path: string): LoadReport;
  /** Detaches; later calls throw an `Error` with code `Closed`. Idempotent. */
  close(): void;
  /**
   * Returns `key`'s value; on a miss exactly one caller across all
   * processes runs `factory` while the others wait and get its value. The
   * waiting happens on one memshelf thread per process, never on libuv's
   * thread pool and never blocking the event loop. If the factory throws or
   * rejects, the error goes to its caller and a waiter takes over. A factory
   * result of `null`/`undefined` stores nothing (or a cached absence with
   * `negativeTtl`) and resolves to `null`. The value resolves as a Buffer
   * (json codec: the parsed value).
   */
  getOrSet<T extends Encodable<C>>(
    key: Key,
    factory: () => T | null | undefined | Promise<T | null | undefined>,
    options?: GetOrSetOptions,
  ): Promise<(C extends 'json' ? T : NodeBuffer) | null>;
}

/** Removes segment `name` (or the file at `options.path`). Attached processes keep their mapping. */
export function unlink(name: string, options?: { path?: string }): void;

/** Fields of an invalidation message (SPEC section 6). */
export interface InvalidationMessage {
  /**
   * `del` (needs at least one key in `keys`), `del_prefix` (needs a
   * non-empty UTF-8 `prefix`), `tag` (needs a non-empty UTF-8 `tag`),
   * `clear` or `hb`; a field the op does not take is a RangeError.
   */
  op: 'del' | 'del_prefix' | 'tag' | 'clear' | 'hb';
  keys?: Array<string | Uint8Array>;
  prefix?: string | Uint8Array;
  tag?: string | Uint8Array;
  /** Only this segment (absent: every segment the agent serves). */
  cache?: string;
  /** Writer id plus per-boot nonce (alone: agents on its own host skip the message). */
  origin?: string;
  /** Per-origin contiguous sequence number (needs `origin`; lets agents detect gaps). */
  seq?: number;
  /** Sender's unix time in ms. */
  ts?: number;
}

/** The JSON payload for the invalidation agent (binary keys go in `keys_b64`). */
export function invalidationMessage(message: InvalidationMessage): string;

/** The segment layout version this addon speaks. */
export const LAYOUT_VERSION: number;
/** Longest key, in bytes. */
export const MAX_KEY_LEN: number;
