'use strict';
// A Keyv storage adapter over a memshelf segment (`memshelf/keyv`), for
// keyv 5.x (what @keyv/test-suite 2.x tests; scripts/test-node.sh runs it).
//
// Keyv hands the store its own serialised strings (value plus expiry) and
// prefixes every key with `namespace:`; the store keeps them as UTF-8
// strings and gives them back as strings. `set`'s TTL is in milliseconds
// and becomes the entry's TTL in the segment too, so the bytes go away
// without Keyv reading them. Several store objects (in this process or
// others) may share one segment; `clear()` removes only this store's
// namespace (a prefix scan), or every entry when it has none.

const { EventEmitter } = require('node:events');
const { Cache } = require('./index.js');

function typeError(what, expected, got) {
  const e = new TypeError(`${what} must be ${expected}, got ${got === null ? 'null' : typeof got}`);
  e.code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

class KeyvMemshelf extends EventEmitter {
  #cache;
  #owned;

  /**
   * `cache`: an open `Cache`, or a segment name to open with `options`
   * (then `disconnect()` closes it).
   */
  constructor(cache, options) {
    super();
    if (cache instanceof Cache) {
      if (cache.codec !== 'raw') throw typeError('cache', "a Cache with the 'raw' codec", cache.codec);
      this.#cache = cache;
      this.#owned = false;
    } else if (typeof cache === 'string') {
      const o = options ?? {};
      if (o.codec !== undefined && o.codec !== 'raw') {
        throw typeError('options.codec', "'raw' (Keyv serialises values itself)", o.codec);
      }
      this.#cache = new Cache(cache, o);
      this.#owned = true;
    } else {
      throw typeError('cache', 'a Cache or a segment name', cache);
    }
    /** Set by Keyv; keys arrive already prefixed with `namespace:`. */
    this.namespace = undefined;
    // Keyv 5 reads `opts.dialect` and `opts.url` (to decide whether to
    // use `iterator`: only for its own adapters; call `iterator` directly).
    this.opts = { dialect: 'memshelf', url: `memshelf://${this.#cache.name}` };
  }

  /** The underlying cache. */
  get cache() {
    return this.#cache;
  }

  async get(key) {
    return this.#cache.getString(key) ?? undefined;
  }

  async getMany(keys) {
    const c = this.#cache;
    return keys.map((k) => c.getString(k) ?? undefined);
  }

  async set(key, value, ttl) {
    this.#cache.put(key, stored(value), putOptions(ttl));
    return true;
  }

  async setMany(entries) {
    for (const { key, value, ttl } of entries) this.#cache.put(key, stored(value), putOptions(ttl));
    return entries.map(() => true);
  }

  async delete(key) {
    return this.#cache.delete(key);
  }

  /** Whether any of `keys` was present (and is now removed). */
  async deleteMany(keys) {
    let any = false;
    for (const k of keys) if (this.#cache.delete(k)) any = true;
    return any;
  }

  async has(key) {
    return this.#cache.has(key);
  }

  async hasMany(keys) {
    return keys.map((k) => this.#cache.has(k));
  }

  async clear() {
    if (this.namespace) this.#cache.deletePrefix(`${this.namespace}:`);
    else this.#cache.clear();
  }

  /** Yields `[key, value]` for the live keys of `namespace` (or all). */
  async *iterator(namespace) {
    const ns = namespace ?? this.namespace;
    for (const key of this.#cache.keys(ns ? `${ns}:` : undefined)) {
      const value = this.#cache.getString(key);
      if (value !== null) yield [key, value];
    }
  }

  async disconnect() {
    if (this.#owned) this.#cache.close();
  }
}

function stored(value) {
  if (typeof value === 'string' || value instanceof Uint8Array) return value;
  // Keyv without a serializer passes objects: store them as JSON.
  const s = JSON.stringify(value);
  if (s === undefined) throw typeError('value', 'a string or a JSON-serialisable value', value);
  return s;
}

function putOptions(ttl) {
  if (ttl === undefined || ttl === null || ttl === 0) return undefined;
  if (typeof ttl !== 'number') throw typeError('ttl', 'a number of milliseconds', ttl);
  return { ttl: ttl / 1000 };
}

// `default` for `import KeyvMemshelf from 'memshelf/keyv'` in code compiled
// to CommonJS (TypeScript, Babel), which reads `default` when __esModule is
// set; ES modules get keyv.mjs.
module.exports = { KeyvMemshelf, default: KeyvMemshelf };
Object.defineProperty(module.exports, '__esModule', { value: true });
