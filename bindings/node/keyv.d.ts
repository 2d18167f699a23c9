// Types of memshelf/keyv, the Keyv (5.x) storage adapter. Hand-written for
// keyv.js; test/typedefs.test.js checks every member against the runtime.
// Structural: no dependency on keyv's or Node's types (the class is an
// EventEmitter at runtime; only what Keyv uses of it is declared).
import type { Cache, OpenOptions } from './index.js';

/** Keyv's view of a store: serialised strings in, strings out. */
export class KeyvMemshelf {
  /**
   * Over an open raw-codec `cache`, or a segment `name` opened with
   * `options` (then `disconnect()` closes it).
   */
  constructor(cache: Cache<'raw'> | string, options?: OpenOptions<'raw'>);
  /** Set by Keyv: keys arrive as `namespace:key`; `clear()` removes only this namespace. */
  namespace: string | undefined;
  /** Adapter options Keyv reads. */
  opts: { dialect: 'memshelf'; url: string; [option: string]: unknown };
  /** The underlying cache. */
  readonly cache: Cache<'raw'>;
  get(key: string): Promise<string | undefined>;
  getMany(keys: string[]): Promise<Array<string | undefined>>;
  /** `ttl` in milliseconds (absent or 0: no expiry). */
  set(key: string, value: string | Uint8Array | unknown, ttl?: number): Promise<boolean>;
  setMany(entries: Array<{ key: string; value: string | Uint8Array | unknown; ttl?: number }>): Promise<boolean[]>;
  delete(key: string): Promise<boolean>;
  /** Whether any of `keys` was present (and is now removed). */
  deleteMany(keys: string[]): Promise<boolean>;
  has(key: string): Promise<boolean>;
  hasMany(keys: string[]): Promise<boolean[]>;
  /** Removes this store's namespace (a prefix scan), or every entry when it has none. */
  clear(): Promise<void>;
  /** `[key, value]` of the live keys of `namespace` (default: this store's). */
  iterator(namespace?: string): AsyncGenerator<[string, string], void, unknown>;
  /** Closes the cache if this store opened it. */
  disconnect(): Promise<void>;
  on(event: 'error', listener: (error: unknown) => void): this;
  on(event: string, listener: (...args: unknown[]) => void): this;
}

export default KeyvMemshelf;
