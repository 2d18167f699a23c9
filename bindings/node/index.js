'use strict';
// memshelf for Node.js: a thin class over the native addon's free functions.
//
// Only argument checks and conversions live here; every cache decision is
// the engine's. Hot-path notes (see README "Node: how values are handed to
// JavaScript"):
// - string keys are UTF-8 encoded into a reusable scratch buffer (no
//   allocation per call);
// - `get` has the addon copy the value straight into the free part of a
//   16 KiB slab and returns a Buffer view of exactly those bytes, as
//   `Buffer.allocUnsafe` does with Node's own pool: each returned Buffer is
//   an independent copy (slab bytes are never handed out twice), and this
//   costs one view instead of an allocation plus a second copy. Values
//   larger than the slab's free part (at least 4 KiB) get their own buffer;
//   `getString` decodes straight from a scratch buffer; `getInto` copies
//   into the caller's buffer;
// - the addon's functions take an External handle (cheaper than a class
//   method through napi).

const native = require('./native.js');

const MAX_KEY_LEN = 4096;
// A key of at most MAX_KEY_LEN UTF-16 units encodes to at most 3 bytes per
// unit; longer strings are too long anyway and are encoded on their own so
// the engine reports their real length.
const KEY_SCRATCH = Buffer.allocUnsafeSlow(3 * MAX_KEY_LEN);
const VALUE_SCRATCH = Buffer.allocUnsafeSlow(64 * 1024);
const FILL_WAIT_MS = 50;
// The slab `get` copies values into (see above).
const SLAB_SIZE = 16 * 1024;
const SLAB_MIN_ROOM = 4 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabOffset = 0;

// The key view of the call in progress (set by keyLength). JavaScript runs
// one call at a time per isolate and no addon call re-enters this module.
let keyView = KEY_SCRATCH;
let valueView = VALUE_SCRATCH;

function typeName(v) {
  if (v === null) return 'null';
  if (typeof v === 'object') return v.constructor ? v.constructor.name : 'object';
  return typeof v;
}

function typeError(what, expected, got) {
  const e = new TypeError(`${what} must be ${expected}, got ${typeName(got)}`);
  e.code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

function keyLength(key) {
  if (typeof key === 'string') {
    if (key.length <= MAX_KEY_LEN) {
      keyView = KEY_SCRATCH;
      return KEY_SCRATCH.utf8Write(key, 0);
    }
    keyView = Buffer.from(key, 'utf8');
    return keyView.length;
  }
  if (key instanceof Uint8Array) {
    keyView = key;
    return key.length;
  }
  throw typeError('key', 'a string, Buffer or Uint8Array', key);
}

function valueLength(value) {
  if (typeof value === 'string') {
    if (value.length * 3 <= VALUE_SCRATCH.length) {
      valueView = VALUE_SCRATCH;
      return VALUE_SCRATCH.utf8Write(value, 0);
    }
    valueView = Buffer.from(value, 'utf8');
    return valueView.length;
  }
  if (value instanceof Uint8Array) {
    valueView = value;
    return value.length;
  }
  throw typeError('value', 'a string, Buffer or Uint8Array', value);
}

function ownedBytes(what, v) {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (v instanceof Uint8Array) return Buffer.from(v);
  throw typeError(what, 'a string, Buffer or Uint8Array', v);
}

function optionalBytes(what, v) {
  return v === undefined || v === null ? undefined : ownedBytes(what, v);
}

function options(opts, what) {
  if (opts === undefined || opts === null) return {};
  if (typeof opts !== 'object') throw typeError(what, 'an object', opts);
  return opts;
}

function seconds(what, v) {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number') throw typeError(what, 'a number of seconds', v);
  return v;
}

function tagList(tags) {
  if (tags === undefined || tags === null) return undefined;
  if (!Array.isArray(tags)) throw typeError('tags', 'an array of strings or Buffers', tags);
  return tags.map((t) => ownedBytes('tag', t));
}

function bool(what, v) {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw typeError(what, 'a boolean', v);
  return v;
}

function size(what, v) {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' && typeof v !== 'string') {
    throw typeError(what, "a number of bytes or a size string such as '64MiB'", v);
  }
  return v;
}

// Reads the current key into a fresh buffer when the value does not fit
// the scratch buffer; returns the buffer (exact length) or null.
function readLarge(h, klen, need) {
  for (;;) {
    const out = Buffer.allocUnsafe(need);
    const n = native.read(h, keyView, klen, out, 0);
    if (n < 0) return null;
    if (n <= out.length) return n === out.length ? out : out.subarray(0, n);
    need = n;
  }
}

/** A handle on a shared-memory segment. See index.d.ts for the API. */
class Cache {
  #h;

  constructor(name, opts) {
    if (typeof name !== 'string') throw typeError('name', 'a string', name);
    const o = options(opts, 'options');
    if (o.mode !== undefined && o.mode !== null && !Number.isInteger(o.mode)) {
      throw typeError('mode', 'an integer such as 0o600', o.mode);
    }
    if (o.path !== undefined && o.path !== null && typeof o.path !== 'string') {
      throw typeError('path', 'a string', o.path);
    }
    this.#h = native.open(name, {
      capacity: size('capacity', o.capacity),
      create: bool('create', o.create),
      mode: o.mode ?? undefined,
      ttl: seconds('ttl', o.ttl),
      ttlJitter: seconds('ttlJitter', o.ttlJitter),
      maxValueSize: size('maxValueSize', o.maxValueSize),
      path: o.path ?? undefined,
    });
    const [segName, capacity, maxValueSize] = native.describe(this.#h);
    Object.defineProperties(this, {
      name: { value: segName, enumerable: true },
      capacity: { value: capacity, enumerable: true },
      maxValueSize: { value: maxValueSize, enumerable: true },
    });
  }

  get(key) {
    const klen = keyLength(key);
    if (SLAB_SIZE - slabOffset < SLAB_MIN_ROOM) {
      slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      slabOffset = 0;
    }
    const off = slabOffset;
    const n = native.read(this.#h, keyView, klen, slab, off);
    if (n < 0) return null;
    if (n > SLAB_SIZE - off) return readLarge(this.#h, klen, n);
    slabOffset = (off + n + 7) & ~7; // keep views 8-byte aligned
    return Buffer.from(slab.buffer, off, n);
  }

  getString(key) {
    const klen = keyLength(key);
    const n = native.read(this.#h, keyView, klen, VALUE_SCRATCH, 0);
    if (n < 0) return null;
    if (n > VALUE_SCRATCH.length) {
      const b = readLarge(this.#h, klen, n);
      return b === null ? null : b.toString('utf8');
    }
    return VALUE_SCRATCH.utf8Slice(0, n);
  }

  getInto(key, buf) {
    const klen = keyLength(key);
    if (!(buf instanceof Uint8Array)) throw typeError('buf', 'a Buffer or Uint8Array', buf);
    let k = keyView;
    if (k !== KEY_SCRATCH && k.buffer === buf.buffer) k = Buffer.from(k);
    return native.read(this.#h, k, klen, buf, 0);
  }

  has(key) {
    const klen = keyLength(key);
    return native.read(this.#h, keyView, klen, VALUE_SCRATCH, 0) >= 0;
  }

  put(key, value, opts) {
    const klen = keyLength(key);
    const vlen = valueLength(value);
    if (opts === undefined) {
      native.put(this.#h, keyView, klen, valueView, vlen);
      return;
    }
    const o = options(opts, 'options');
    native.put(this.#h, keyView, klen, valueView, vlen, seconds('ttl', o.ttl), tagList(o.tags));
  }

  add(key, value, opts) {
    const klen = keyLength(key);
    const vlen = valueLength(value);
    const o = options(opts, 'options');
    return native.add(this.#h, keyView, klen, valueView, vlen, seconds('ttl', o.ttl), tagList(o.tags));
  }

  delete(key) {
    const klen = keyLength(key);
    return native.delete(this.#h, keyView, klen);
  }

  incr(key, delta = 1, opts) {
    const klen = keyLength(key);
    if (typeof delta !== 'number' && typeof delta !== 'bigint') {
      throw typeError('delta', 'a number or bigint', delta);
    }
    const o = options(opts, 'options');
    return native.incr(this.#h, keyView, klen, delta, seconds('ttl', o.ttl));
  }

  ttl(key) {
    const klen = keyLength(key);
    return native.ttl(this.#h, keyView, klen);
  }

  touch(key, ttl) {
    const klen = keyLength(key);
    if (typeof ttl !== 'number') throw typeError('ttl', 'a number of seconds', ttl);
    return native.touch(this.#h, keyView, klen, ttl);
  }

  invalidateTag(tag) {
    native.invalidateTag(this.#h, ownedBytes('tag', tag));
  }

  deletePrefix(prefix) {
    return native.deletePrefix(this.#h, ownedBytes('prefix', prefix));
  }

  clear() {
    native.clear(this.#h);
  }

  keys(prefix) {
    return native.keys(this.#h, optionalBytes('prefix', prefix));
  }

  keyBuffers(prefix) {
    return native.keyBuffers(this.#h, optionalBytes('prefix', prefix));
  }

  stats() {
    return native.stats(this.#h);
  }

  get closed() {
    return native.isClosed(this.#h);
  }

  close() {
    native.close(this.#h);
  }

  async getOrSet(key, factory, opts) {
    // The key is copied: the scratch buffer is reused by other calls while
    // this one awaits.
    const k = ownedBytes('key', key);
    if (typeof factory !== 'function') throw typeError('factory', 'a function', factory);
    const o = options(opts, 'options');
    const args = {
      ttl: seconds('ttl', o.ttl),
      lease: seconds('lease', o.lease),
      grace: seconds('grace', o.grace),
      negativeTtl: seconds('negativeTtl', o.negativeTtl),
      tags: tagList(o.tags),
    };
    for (;;) {
      const step = native.beginFill(this.#h, k, k.length, args);
      switch (step.state) {
        case 'hit':
        case 'stale':
          return step.value;
        case 'absent':
          return null;
        case 'wait':
          await native.waitFill(this.#h, step.ticket, FILL_WAIT_MS);
          break;
        case 'lead': {
          let value;
          try {
            value = await factory();
            value = value === undefined || value === null ? null : ownedBytes('factory result', value);
          } catch (e) {
            native.abandonLease(step.lease);
            throw e;
          }
          native.fillLease(step.lease, value);
          return value;
        }
        default:
          throw new Error(`memshelf: unexpected fill state ${step.state}`);
      }
    }
  }
}

function unlink(name, opts) {
  if (typeof name !== 'string') throw typeError('name', 'a string', name);
  const o = options(opts, 'options');
  if (o.path !== undefined && o.path !== null && typeof o.path !== 'string') {
    throw typeError('path', 'a string', o.path);
  }
  native.unlink(name, o.path ?? undefined);
}

function invalidationMessage(msg) {
  const m = options(msg, 'message');
  if (typeof m.op !== 'string') throw typeError('op', 'a string', m.op);
  let keys;
  if (m.keys !== undefined && m.keys !== null) {
    if (!Array.isArray(m.keys)) throw typeError('keys', 'an array of strings or Buffers', m.keys);
    keys = m.keys.map((k) => ownedBytes('key', k));
  }
  for (const f of ['cache', 'origin']) {
    if (m[f] !== undefined && m[f] !== null && typeof m[f] !== 'string') throw typeError(f, 'a string', m[f]);
  }
  for (const f of ['seq', 'ts']) {
    if (m[f] !== undefined && m[f] !== null && typeof m[f] !== 'number') throw typeError(f, 'a number', m[f]);
  }
  return native.invalidationMessage({
    op: m.op,
    keys,
    prefix: optionalBytes('prefix', m.prefix),
    tag: optionalBytes('tag', m.tag),
    cache: m.cache ?? undefined,
    origin: m.origin ?? undefined,
    seq: m.seq ?? undefined,
    ts: m.ts ?? undefined,
  });
}

const LAYOUT_VERSION = native.layoutVersion();

module.exports = { Cache, unlink, invalidationMessage, LAYOUT_VERSION, MAX_KEY_LEN };
