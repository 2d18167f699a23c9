'use strict';
// Read-through helpers for Redis (`memshelf/redis`, SPEC section 9): a
// memshelf segment as a host-wide near-cache in front of an ioredis client.
//
// `get(key)` returns the segment's entry, or takes the key's getOrSet lease
// *before* asking Redis, then sends GET and PTTL in one MULTI/EXEC round
// trip: of all the processes of the host that miss the key at once, one asks
// Redis and the others wait for its value. The value (bytes, unchanged) is
// stored with the key's remaining Redis TTL less the round trip, or
// `defaultTtl` when the key has none. A key Redis does not have returns
// null and is not cached, unless `negativeTtl` is given.
//
// `set`/`del` write Redis, then delete the keys from the local segment (this
// host reads its own write at once; the agent's tracking feed invalidates
// every other host). A delete that lands while a fill is in flight voids
// its lease: the value fetched before the write goes back to that caller
// but is not stored. Every rule (keys, TTLs, leases) is the segment's; this
// module only composes calls. ioredis is not loaded here: pass your client.

const { Cache } = require('./index.js');

// Cache's getOrSet whose factory resolves to [value, ttl] (index.js).
const GET_OR_SET_TIMED = Symbol.for('memshelf.getOrSetTimed');
// The shortest TTL stored (the engine's resolution): a key whose Redis TTL
// runs out during the round trip is stored for 1 ms rather than not at all.
const MIN_TTL = 0.001;

function typeError(what, expected, got) {
  const name = got === null ? 'null' : typeof got === 'object' ? got.constructor?.name ?? 'object' : typeof got;
  const e = new TypeError(`${what} must be ${expected}, got ${name}`);
  e.code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

function optionalSeconds(what, v) {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number') throw typeError(what, 'a number of seconds', v);
  return v;
}

/** The TTL to store a value with (seconds), from its PTTL reply. */
function ttlOf(pttl, started) {
  if (typeof pttl === 'number' && pttl > 0) {
    return Math.max((pttl - (performance.now() - started)) / 1000, MIN_TTL);
  }
  if (pttl === -1) return undefined; // no TTL in Redis: defaultTtl
  return MIN_TTL; // -2 beside a value cannot happen inside MULTI
}

/** [err, reply] pairs of a MULTI/EXEC: the replies, or the first error. */
function replies(results) {
  if (!Array.isArray(results)) throw new Error('memshelf/redis: the MULTI/EXEC transaction was aborted');
  return results.map(([err, reply]) => {
    if (err) throw err;
    return reply;
  });
}

class NearCache {
  #redis;
  #cache;
  #opts;

  /**
   * `redis`: an ioredis client (Redis or Cluster); `cache`: an open
   * raw-codec Cache. Options: `defaultTtl` (seconds to keep a value whose
   * key has no Redis TTL; default 60; 0: the segment's default TTL, else
   * never), `lease` (seconds a fill may take before a waiter takes over;
   * default 10), `negativeTtl` (cache a key Redis does not have that long;
   * default: not cached).
   */
  constructor(redis, cache, options) {
    if (redis === null || typeof redis !== 'object' || typeof redis.multi !== 'function' ||
        typeof redis.getBuffer !== 'function') {
      throw typeError('redis', 'an ioredis client', redis);
    }
    if (!(cache instanceof Cache)) throw typeError('cache', 'a memshelf Cache', cache);
    if (cache.codec !== 'raw') throw typeError('cache', "a Cache with the 'raw' codec (values are Redis's bytes)", cache.codec);
    const o = options ?? {};
    if (typeof o !== 'object') throw typeError('options', 'an object', o);
    this.#redis = redis;
    this.#cache = cache;
    this.#opts = {
      ttl: o.defaultTtl === undefined ? 60 : optionalSeconds('defaultTtl', o.defaultTtl),
      lease: optionalSeconds('lease', o.lease),
      negativeTtl: optionalSeconds('negativeTtl', o.negativeTtl),
    };
  }

  /** The ioredis client. */
  get redis() {
    return this.#redis;
  }

  /** The memshelf segment. */
  get cache() {
    return this.#cache;
  }

  async #fetch(key) {
    const started = performance.now();
    const [value, pttl] = replies(await this.#redis.multi().getBuffer(key).pttl(key).exec());
    if (value === null) return [null, undefined];
    return [value, ttlOf(pttl, started)];
  }

  /** The segment's entry, or Redis's value (then stored with its remaining TTL); null if Redis has none. */
  async get(key) {
    return this.#cache[GET_OR_SET_TIMED](key, () => this.#fetch(key), this.#opts);
  }

  /**
   * `get` of every key: one segment lookup each, and one Redis round trip
   * for the misses (each through its own lease, as `get`).
   */
  async getMany(keys) {
    if (!Array.isArray(keys)) throw typeError('keys', 'an array of keys', keys);
    const c = this.#cache;
    const out = c.getMany(keys);
    const missing = [];
    for (let i = 0; i < out.length; i++) if (out[i] === null) missing.push(i);
    if (missing.length === 0) return out;
    // Every missing key goes through its own lease (getOrSet). The keys
    // this process leads at once share one MULTI, sent only after all of
    // their leases are taken (a lease must come before its GET, or a write
    // in between could be stored stale); a key that leads later (after
    // waiting for another process's fill that did not store) asks alone.
    const batched = []; // [index, resolve]
    let firstPass = true;
    const results = Promise.all(missing.map(async (i) => {
      out[i] = await c[GET_OR_SET_TIMED](keys[i], () => {
        if (!firstPass) return this.#fetch(keys[i]);
        return new Promise((resolve, reject) => batched.push([i, resolve, reject]));
      }, this.#opts);
    }));
    firstPass = false;
    results.catch(() => {}); // awaited below, after the MULTI
    if (batched.length > 0) {
      try {
        const started = performance.now();
        const m = this.#redis.multi();
        for (const [i] of batched) m.getBuffer(keys[i]).pttl(keys[i]);
        const r = replies(await m.exec());
        batched.forEach(([, resolve], n) => {
          const value = r[2 * n];
          resolve(value === null ? [null, undefined] : [value, ttlOf(r[2 * n + 1], started)]);
        });
      } catch (e) {
        for (const [, , reject] of batched) reject(e);
      }
    }
    await results;
    return out;
  }

  /** Redis SET (extra arguments as ioredis's: 'EX', 10, 'NX'...), then deletes key locally; Redis's answer. */
  async set(key, value, ...args) {
    this.#cache.ttl(key); // a key the segment refuses throws before Redis is written
    try {
      return await this.#redis.set(key, value, ...args);
    } finally {
      this.#cache.delete(key); // also when the reply is lost: the write may have landed
    }
  }

  /** Redis DEL of keys, then deletes them locally; how many Redis had. */
  async del(...keys) {
    for (const k of keys) this.#cache.ttl(k);
    if (keys.length === 0) return 0;
    try {
      return await this.#redis.del(...keys);
    } finally {
      for (const k of keys) this.#cache.delete(k);
    }
  }
}

// `default` for `import NearCache from 'memshelf/redis'` in code compiled to
// CommonJS (as keyv.js); ES modules get redis.mjs.
module.exports = { NearCache, default: NearCache };
Object.defineProperty(module.exports, '__esModule', { value: true });
