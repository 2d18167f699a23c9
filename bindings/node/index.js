'use strict';
// memshelf for Node.js: a thin class over the native addon's functions.
//
// Only argument checks and conversions live here; every cache decision is
// the engine's. Hot-path notes (see README "How values are handed to
// JavaScript"):
// - a cache is a small integer handle into the addon's table (a napi
//   External argument costs more than the lookup);
// - every key is encoded (strings) or copied (bytes) into one key buffer
//   that the addon registered once, so calls pass only its length;
// - `get` has the addon copy the value straight into the free part of a
//   16 KiB slab (also registered) and returns a Buffer view of exactly
//   those bytes, as `Buffer.allocUnsafe` does with Node's own pool: each
//   returned Buffer is an independent copy (slab bytes are never handed out
//   twice). Values larger than the slab's free part get their own buffer;
//   `getString` decodes straight from a registered value buffer; `getInto`
//   copies into the caller's buffer.

const { markAsUntransferable } = require('node:worker_threads');
const native = require('./native.js');

// The hot functions as module constants: a property load on the addon's
// exports object (dozens of properties) costs more than the call setup.
const { getSlab, getValue, getInto: nativeGetInto, readInto } = native;

const MAX_KEY_LEN = 4096;
// The key of Cache's timed getOrSet (memshelf/redis uses it; see there).
const GET_OR_SET_TIMED = Symbol.for('memshelf.getOrSetTimed');
// A key of at most MAX_KEY_LEN UTF-16 units encodes to at most 3 bytes per
// unit; a longer string or byte key is too long for the engine anyway.
const KEY_SCRATCH = Buffer.allocUnsafeSlow(3 * MAX_KEY_LEN);
const VALUE_SCRATCH = Buffer.allocUnsafeSlow(64 * 1024);
native.setScratch(KEY_SCRATCH, VALUE_SCRATCH);
// The slab `get` copies values into (see above).
const SLAB_SIZE = 16 * 1024;
const SLAB_MIN_ROOM = 4 * 1024;
let slab;
let slabBuffer; // slab.buffer (reading it is a builtin call)
let slabOffset = 0;
function newSlab() {
  slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
  // The views `get` hands out share this memory, which the addon keeps
  // writing: a transfer (postMessage, structuredClone) must copy it, never
  // detach it (as Node's own Buffer pool is marked).
  markAsUntransferable(slab.buffer);
  slabBuffer = slab.buffer;
  slabOffset = 0;
  native.setSlab(slab);
}
newSlab();

if (native.isDebugBuild() && !process.env.MEMSHELF_ALLOW_DEBUG_ADDON) {
  process.emitWarning(
    'memshelf: the native addon is a debug build (about 2x slower). Install the packed ' +
      'packages, or build a release addon with `npm run build` in bindings/node.',
    { code: 'MEMSHELF_DEBUG_ADDON' },
  );
}

// Handles of caches that were never closed are closed when their Cache is
// collected.
const unclosed = new FinalizationRegistry((h) => native.close(h));

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

// A number outside its limits, checked here rather than by the engine: the
// engine's own `InvalidArgument`, as the addon throws it.
function rangeError(message) {
  const e = new RangeError(message);
  e.code = 'InvalidArgument';
  return e;
}

// Two JavaScript strings that differ only in lone surrogates would encode
// to the same UTF-8 bytes (each becomes U+FFFD), so they are refused.
function notWellFormed(what) {
  const e = new TypeError(`${what} contains a lone surrogate (not valid UTF-16), so it has no UTF-8 form`);
  e.code = 'ERR_INVALID_ARG_VALUE';
  return e;
}

function checkText(what, s) {
  if (!s.isWellFormed()) throw notWellFormed(what);
}

/** Puts `key` into the key buffer; returns its length in bytes. */
function loadKey(key) {
  if (typeof key === 'string') {
    if (!key.isWellFormed()) throw notWellFormed('key');
    if (key.length <= MAX_KEY_LEN) return KEY_SCRATCH.utf8Write(key, 0);
    throw native.keyTooLong(Buffer.byteLength(key, 'utf8'));
  }
  if (key instanceof Uint8Array) {
    if (key.length > KEY_SCRATCH.length) throw native.keyTooLong(key.length);
    KEY_SCRATCH.set(key);
    return key.length;
  }
  throw typeError('key', 'a string, Buffer or Uint8Array', key);
}

// The value of the call in progress: `undefined` means it was encoded into
// VALUE_SCRATCH (strings that fit), else the bytes to pass.
let valueView;

/** Prepares `value` for put/add; returns its length in bytes. */
function loadValue(value) {
  if (typeof value === 'string') {
    if (!value.isWellFormed()) throw notWellFormed('value');
    if (value.length * 3 <= VALUE_SCRATCH.length) {
      valueView = undefined;
      return VALUE_SCRATCH.utf8Write(value, 0);
    }
    valueView = Buffer.from(value, 'utf8');
    return valueView.length;
  }
  if (value instanceof Uint8Array) {
    // Memory another thread may write while the engine reads it (twice:
    // checksum, then copy) is copied first, or a racing write would leave
    // an item that fails its checksum: a put that silently stored nothing.
    valueView = value.buffer instanceof SharedArrayBuffer ? Buffer.from(value) : value;
    return value.length;
  }
  throw typeError('value', 'a string, Buffer or Uint8Array', value);
}

function ownedBytes(what, v) {
  if (typeof v === 'string') {
    checkText(what, v);
    return Buffer.from(v, 'utf8');
  }
  if (v instanceof Uint8Array) return Buffer.from(v);
  throw typeError(what, 'a string, Buffer or Uint8Array', v);
}

// A file path (a non-empty string).
function pathArg(path) {
  if (typeof path !== 'string' || path === '') throw typeError('path', 'a non-empty string', path);
  return path;
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

function codecOf(v) {
  if (v === undefined || v === null || v === 'raw') return false;
  if (v === 'json') return true;
  const e = new TypeError(`codec must be 'raw' or 'json', got ${typeof v === 'string' ? `'${v}'` : typeName(v)}`);
  e.code = 'ERR_INVALID_ARG_VALUE';
  throw e;
}

/** The value of stored JSON text (the json codec); text that is not JSON
 * (written by another codec, or by hand) is an Error with code
 * `CodecError`, as Python's `CodecError`. */
function fromJson(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    const err = new Error(`memshelf: the stored value is not JSON (${e.message})`, { cause: e });
    err.code = 'CodecError';
    throw err;
  }
}

/** JSON text of a value for the json codec. */
function toJson(what, v) {
  const s = JSON.stringify(v);
  if (s === undefined) throw typeError(what, 'a JSON-serialisable value', v);
  return s;
}

// Reads the key in the key buffer into a fresh buffer of `need` bytes (the
// value did not fit the slab or value buffer); returns it or null.
function readLarge(h, klen, need) {
  for (;;) {
    const out = Buffer.allocUnsafe(need);
    const n = readInto(h, klen, out);
    if (n < 0) return null;
    if (n <= out.length) return n === out.length ? out : out.subarray(0, n);
    need = n; // it grew meanwhile
  }
}

// Packing buffers of getMany/putMany (grown on demand, reused).
let batchKeys = Buffer.allocUnsafeSlow(16 * 1024);
let batchVals = Buffer.allocUnsafeSlow(64 * 1024);
let batchCount = 0;
let klenTable;
let klenBytes;
let vlenTable;
let vlenBytes;
let outTable;
let outBytes;
function batchTables(n) {
  if (n <= batchCount) return;
  const count = Math.max(n, 2 * batchCount, 64);
  // Allocated first, kept only once all exist: a batch too large to
  // allocate for throws and leaves the tables as they were.
  const k = new Uint32Array(count);
  const v = new Uint32Array(count);
  const out = new Int32Array(2 * count);
  klenTable = k;
  klenBytes = Buffer.from(k.buffer);
  vlenTable = v;
  vlenBytes = Buffer.from(v.buffer);
  outTable = out;
  outBytes = Buffer.from(out.buffer);
  batchCount = count;
}
function grow(buf, need) {
  let n = buf.length;
  while (n < need) n *= 2;
  const b = Buffer.allocUnsafeSlow(n);
  buf.copy(b);
  return b;
}

// Appends `v` to the packing buffer `which` (0: keys, 1: values) at `pos`;
// returns its length in bytes (the buffer may be replaced by a larger one).
function packItem(what, which, pos, v) {
  if (typeof v === 'string') {
    if (!v.isWellFormed()) throw notWellFormed(what);
    const need = pos + 3 * v.length;
    if (which === 0) {
      if (need > batchKeys.length) batchKeys = grow(batchKeys, need);
      return batchKeys.utf8Write(v, pos);
    }
    if (need > batchVals.length) batchVals = grow(batchVals, need);
    return batchVals.utf8Write(v, pos);
  }
  if (v instanceof Uint8Array) {
    const need = pos + v.length;
    if (which === 0) {
      if (need > batchKeys.length) batchKeys = grow(batchKeys, need);
      batchKeys.set(v, pos);
    } else {
      if (need > batchVals.length) batchVals = grow(batchVals, need);
      batchVals.set(v, pos);
    }
    return v.length;
  }
  throw typeError(what, 'a string, Buffer or Uint8Array', v);
}

// Packs the first `count` keys into batchKeys with one utf8Write of their
// concatenation when they are all ASCII strings (the usual keys), setting
// klenTable; returns false, having packed nothing usable, otherwise. A
// write per key costs ~80 ns, more than its share of the lookups. Every
// UTF-16 unit encodes to at least one byte, and only an ASCII unit to
// exactly one, so an encoding as long as the concatenation means every key
// is ASCII (a lone surrogate, or a pair split across two keys, encodes
// longer): each key's byte length is then its string length.
// Batches of more than ASCII_PACK_MAX key characters are packed key by key
// (a string has a length limit; a batch that large gains nothing).
const ASCII_PACK_MAX = 1 << 20;
function packAsciiKeys(keys, count) {
  let s = '';
  for (let i = 0; i < count; i++) {
    const k = keys[i];
    if (typeof k !== 'string' || s.length + k.length > ASCII_PACK_MAX) return false;
    klenTable[i] = k.length;
    s += k;
  }
  const need = 3 * s.length;
  if (need > batchKeys.length) batchKeys = grow(batchKeys, need);
  return batchKeys.utf8Write(s, 0) === s.length;
}

/** A handle on a shared-memory segment. See index.d.ts for the API. */
class Cache {
  #h;
  #json;

  constructor(name, opts) {
    if (typeof name !== 'string') throw typeError('name', 'a string', name);
    const o = options(opts, 'options');
    if (o.mode !== undefined && o.mode !== null && !Number.isInteger(o.mode)) {
      throw typeError('mode', 'an integer such as 0o600', o.mode);
    }
    if (Number.isInteger(o.mode) && (o.mode < 0 || o.mode > 0o777)) {
      // (the addon takes a u32: a larger number would wrap to another mode)
      throw rangeError(`mode ${o.mode} has bits outside 0o777`);
    }
    if (o.path !== undefined && o.path !== null && typeof o.path !== 'string') {
      throw typeError('path', 'a string', o.path);
    }
    this.#json = codecOf(o.codec);
    this.#h = native.open(name, {
      capacity: size('capacity', o.capacity),
      create: bool('create', o.create),
      mode: o.mode ?? undefined,
      ttl: seconds('ttl', o.ttl),
      ttlJitter: seconds('ttlJitter', o.ttlJitter),
      maxValueSize: size('maxValueSize', o.maxValueSize),
      expectedEntrySize: size('expectedEntrySize', o.expectedEntrySize),
      path: o.path ?? undefined,
    });
    unclosed.register(this, this.#h, this);
    const [segName, capacity, maxValueSize] = native.describe(this.#h);
    Object.defineProperties(this, {
      name: { value: segName, enumerable: true },
      capacity: { value: capacity, enumerable: true },
      maxValueSize: { value: maxValueSize, enumerable: true },
      codec: { value: this.#json ? 'json' : 'raw', enumerable: true },
    });
  }

  get(key) {
    const h = this.#h;
    if (this.#json) return this.#readJson(h, loadKey(key));
    if (SLAB_SIZE - slabOffset < SLAB_MIN_ROOM) newSlab();
    const off = slabOffset;
    // The addon converts the key itself (one napi call, no encode call).
    const n = getSlab(h, key, off);
    if (n < 0) return null;
    if (n > SLAB_SIZE - off) return readLarge(h, loadKey(key), n);
    slabOffset = (off + n + 7) & ~7; // keep views 8-byte aligned
    return Buffer.from(slabBuffer, off, n);
  }

  #readJson(h, klen) {
    const n = native.readValue(h, klen);
    if (n < 0) return null;
    if (n <= VALUE_SCRATCH.length) return fromJson(VALUE_SCRATCH.utf8Slice(0, n));
    const b = readLarge(h, klen, n);
    return b === null ? null : fromJson(b.utf8Slice(0, b.length));
  }

  getString(key) {
    const h = this.#h;
    const n = getValue(h, key);
    if (n < 0) return null;
    if (n > VALUE_SCRATCH.length) {
      const b = readLarge(h, loadKey(key), n);
      return b === null ? null : b.utf8Slice(0, b.length);
    }
    return VALUE_SCRATCH.utf8Slice(0, n);
  }

  getInto(key, buf) {
    if (typeof key === 'string') {
      if (!(buf instanceof Uint8Array)) throw typeError('buf', 'a Buffer or Uint8Array', buf);
      return nativeGetInto(this.#h, key, buf);
    }
    // Byte keys are copied into the key buffer first: they may share
    // memory with `buf`.
    const klen = loadKey(key);
    if (!(buf instanceof Uint8Array)) throw typeError('buf', 'a Buffer or Uint8Array', buf);
    return readInto(this.#h, klen, buf);
  }

  has(key) {
    return getValue(this.#h, key) >= 0;
  }

  getMany(keys) {
    if (!Array.isArray(keys)) throw typeError('keys', 'an array of keys', keys);
    const count = keys.length;
    batchTables(count);
    if (!packAsciiKeys(keys, count)) {
      let pos = 0;
      for (let i = 0; i < count; i++) {
        const n = packItem('key', 0, pos, keys[i]);
        klenTable[i] = n;
        pos += n;
      }
    }
    const h = this.#h;
    const json = this.#json;
    const out = new Array(count);
    let start = 0;
    while (start < count) {
      if (SLAB_SIZE - slabOffset < SLAB_MIN_ROOM) newSlab();
      const stop = native.readMany(h, batchKeys, klenBytes, count, start, outBytes, slabOffset);
      const s = slab;
      for (let i = start; i < stop; i++) {
        const off = outTable[2 * i];
        if (off < 0) {
          out[i] = null;
        } else {
          const n = outTable[2 * i + 1];
          out[i] = json ? fromJson(s.utf8Slice(off, off + n)) : Buffer.from(slabBuffer, off, n);
          // Text decoded by the json codec leaves the slab bytes free.
          if (!json) slabOffset = (off + n + 7) & ~7;
        }
      }
      if (stop >= count) break;
      const need = outTable[2 * stop + 1];
      if (need > SLAB_SIZE) {
        // One value larger than a slab: read it on its own.
        let kpos = 0;
        for (let i = 0; i < stop; i++) kpos += klenTable[i];
        const klen = klenTable[stop];
        KEY_SCRATCH.set(batchKeys.subarray(kpos, kpos + klen));
        const b = readLarge(h, klen, need);
        out[stop] = b === null ? null : json ? fromJson(b.utf8Slice(0, b.length)) : b;
        start = stop + 1;
      } else {
        newSlab();
        start = stop;
      }
    }
    return out;
  }

  put(key, value, opts) {
    const klen = loadKey(key);
    const vlen = loadValue(this.#json ? toJson('value', value) : value);
    if (opts === undefined) {
      native.put(this.#h, klen, vlen, valueView);
      return;
    }
    const o = options(opts, 'options');
    native.put(this.#h, klen, vlen, valueView, seconds('ttl', o.ttl), tagList(o.tags));
  }

  putMany(items, opts) {
    if (items === null || typeof items !== 'object' || typeof items[Symbol.iterator] !== 'function') {
      throw typeError('items', 'an iterable of [key, value] pairs (an array or a Map)', items);
    }
    const ttl = seconds('ttl', options(opts, 'options').ttl);
    const json = this.#json;
    const list = Array.isArray(items) ? items : [...items];
    const count = list.length;
    batchTables(count);
    let kpos = 0;
    let vpos = 0;
    for (let i = 0; i < count; i++) {
      const item = list[i];
      if (!Array.isArray(item) || item.length < 2) throw typeError(`items[${i}]`, 'a [key, value] pair', item);
      const kn = packItem('key', 0, kpos, item[0]);
      klenTable[i] = kn;
      kpos += kn;
      const vn = packItem('value', 1, vpos, json ? toJson('value', item[1]) : item[1]);
      vlenTable[i] = vn;
      vpos += vn;
    }
    native.putMany(this.#h, batchKeys, klenBytes, batchVals, vlenBytes, count, ttl);
  }

  add(key, value, opts) {
    const klen = loadKey(key);
    const vlen = loadValue(this.#json ? toJson('value', value) : value);
    const o = options(opts, 'options');
    return native.add(this.#h, klen, vlen, valueView, seconds('ttl', o.ttl), tagList(o.tags));
  }

  delete(key) {
    return native.remove(this.#h, loadKey(key));
  }

  incr(key, delta = 1, opts) {
    const klen = loadKey(key);
    if (typeof delta !== 'number' && typeof delta !== 'bigint') {
      throw typeError('delta', 'a number or bigint', delta);
    }
    const o = options(opts, 'options');
    return native.incr(this.#h, klen, delta, seconds('ttl', o.ttl));
  }

  ttl(key) {
    return native.ttl(this.#h, loadKey(key));
  }

  touch(key, ttl) {
    const klen = loadKey(key);
    if (typeof ttl !== 'number') throw typeError('ttl', 'a number of seconds', ttl);
    return native.touch(this.#h, klen, ttl);
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

  hotKeys(n = 10) {
    if (!Number.isInteger(n)) throw typeError('n', 'a non-negative integer', n);
    if (n < 0 || n > 0xffffffff) {
      // (the README's rule: a value outside its limits is a RangeError)
      throw rangeError(`n ${n} is out of range (0 to ${0xffffffff})`);
    }
    return native.hotKeys(this.#h, n);
  }

  dump(path) {
    return native.dump(this.#h, pathArg(path));
  }

  load(path) {
    return native.load(this.#h, pathArg(path));
  }

  get closed() {
    return native.isClosed(this.#h);
  }

  close() {
    unclosed.unregister(this);
    native.close(this.#h);
  }

  async getOrSet(key, factory, opts) {
    return this.#fill(key, factory, opts, false);
  }

  // getOrSet whose factory resolves to `[value, ttl]`: the value's TTL in
  // seconds (undefined/null: opts.ttl). For memshelf/redis, which learns
  // the key's remaining Redis TTL with the value; not part of the API.
  async [GET_OR_SET_TIMED](key, factory, opts) {
    return this.#fill(key, factory, opts, true);
  }

  async #fill(key, factory, opts, timed) {
    // The key is copied: the key buffer is reused by other calls while this
    // one awaits, so it is loaded again before each step.
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
    const h = this.#h;
    const json = this.#json;
    const call = native.newFillCall(); // the engine counts this call's wait once
    for (;;) {
      const step = native.beginFill(h, call, loadKey(k), args);
      switch (step.state) {
        case 'hit':
        case 'stale':
          return json ? fromJson(step.value.utf8Slice(0, step.value.length)) : step.value;
        case 'absent':
          return null;
        case 'wait':
          await native.waitFill(h, step.ticket);
          break;
        case 'lead': {
          let value;
          let bytes;
          let ttl;
          try {
            value = await factory();
            if (timed) {
              if (!Array.isArray(value) || value.length !== 2) {
                throw typeError('factory result', 'a [value, ttl] pair', value);
              }
              ttl = seconds('factory ttl', value[1]);
              value = value[0];
            }
            if (value === undefined || value === null) {
              value = null;
              bytes = null;
            } else {
              bytes = ownedBytes('factory result', json ? toJson('factory result', value) : value);
            }
            native.fillLease(step.lease, bytes, ttl);
          } catch (e) {
            native.abandonLease(step.lease);
            throw e;
          }
          return json ? value : bytes;
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
