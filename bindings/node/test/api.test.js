'use strict';
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { memshelf, segName, cleanup } = require('../testlib/util.js');

const { Cache, unlink } = memshelf;

after(cleanup);

function open(tag, opts = {}) {
  return new Cache(segName(tag), { capacity: '8MiB', ...opts });
}

function throwsCode(fn, cls, code) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.length > 0);
    return true;
  });
}

test('ESM and CommonJS entries export the same API', async () => {
  const esm = await import('memshelf');
  assert.equal(esm.Cache, memshelf.Cache);
  assert.equal(esm.unlink, memshelf.unlink);
  assert.equal(esm.invalidationMessage, memshelf.invalidationMessage);
  assert.equal(esm.default, memshelf);
  assert.equal(typeof memshelf.LAYOUT_VERSION, 'number');
});

test('open: options, properties, attach, create:false, capacity strings', () => {
  const name = segName('open');
  const c = new Cache(name, { capacity: '4MiB', mode: 0o600, ttl: 0, ttlJitter: 0, maxValueSize: '1KiB' });
  assert.equal(c.name, name);
  assert.equal(c.capacity, 4 << 20);
  assert.equal(c.maxValueSize, 1024);
  assert.equal(c.closed, false);
  assert.ok(fs.existsSync(`/dev/shm/memshelf.${name}`));
  c.put('k', 'v');
  // Attaching with another capacity uses the existing segment.
  const d = new Cache(name, { capacity: 16 << 20, create: false });
  assert.equal(d.capacity, 4 << 20);
  assert.equal(d.getString('k'), 'v');
  d.close();
  c.close();
  throwsCode(() => new Cache(segName('absent'), { create: false }), Error, 'NotFound');
  const n = new Cache(segName('num'), { capacity: 1 << 20 });
  assert.equal(n.capacity, 1 << 20);
  n.close();
});

test('open: bad names, capacities and options', () => {
  for (const bad of ['', '.hidden', 'a/b', '..', 'sp ace', 'x'.repeat(201)]) {
    throwsCode(() => new Cache(bad), RangeError, 'InvalidName');
  }
  throwsCode(() => new Cache(segName('cap'), { capacity: 'lots' }), RangeError, 'InvalidArgument');
  throwsCode(() => new Cache(segName('cap'), { capacity: 1.5 }), RangeError, 'InvalidArgument');
  throwsCode(() => new Cache(segName('cap'), { capacity: -1 }), RangeError, 'InvalidArgument');
  throwsCode(() => new Cache(segName('cap'), { capacity: 10 }), RangeError, 'InvalidArgument');
  throwsCode(() => new Cache(segName('jit'), { ttlJitter: 0.9 }), RangeError, 'InvalidArgument');
  throwsCode(() => new Cache(segName('mode'), { mode: 0o7777 }), RangeError, 'InvalidArgument');
  throwsCode(() => new Cache(segName('ttl'), { ttl: -5 }), RangeError, 'InvalidTtl');
  throwsCode(() => new Cache(segName('ttl'), { ttl: NaN }), RangeError, 'InvalidTtl');
  throwsCode(() => new Cache(42), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => new Cache(segName('t'), 'opts'), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => new Cache(segName('t'), { capacity: {} }), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => new Cache(segName('t'), { create: 'yes' }), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => new Cache(segName('t'), { mode: '600' }), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => new Cache(segName('t'), { ttl: '5' }), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => new Cache(segName('t'), { path: 5 }), TypeError, 'ERR_INVALID_ARG_TYPE');
});

test('open: a file-backed segment with path', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memshelf-node-'));
  const file = path.join(dir, 'seg');
  const c = new Cache('filebacked', { capacity: '1MiB', path: file });
  c.put('k', 'v');
  const d = new Cache('filebacked', { path: file, create: false });
  assert.equal(d.getString('k'), 'v');
  c.close();
  d.close();
  unlink('filebacked', { path: file });
  assert.ok(!fs.existsSync(file));
  fs.rmSync(dir, { recursive: true });
});

test('get / getString / getInto / has / put / delete', () => {
  const c = open('basic');
  assert.equal(c.get('missing'), null);
  assert.equal(c.getString('missing'), null);
  assert.equal(c.getInto('missing', Buffer.alloc(4)), -1);
  assert.equal(c.has('missing'), false);
  c.put('k', 'value');
  assert.deepEqual(c.get('k'), Buffer.from('value'));
  assert.equal(c.getString('k'), 'value');
  assert.equal(c.has('k'), true);
  const buf = Buffer.alloc(16, 0xee);
  assert.equal(c.getInto('k', buf), 5);
  assert.equal(buf.subarray(0, 5).toString(), 'value');
  assert.equal(buf[5], 0xee);
  // Too small: the needed length, nothing copied.
  const small = Buffer.alloc(2, 0xee);
  assert.equal(c.getInto('k', small), 5);
  assert.deepEqual(small, Buffer.from([0xee, 0xee]));
  // Returned buffers are independent copies.
  const a = c.get('k');
  a[0] = 0x58;
  assert.equal(c.getString('k'), 'value');
  c.put('k', 'other');
  assert.equal(a.toString(), 'Xalue');
  assert.equal(c.delete('k'), true);
  assert.equal(c.delete('k'), false);
  assert.equal(c.get('k'), null);
  // Empty value.
  c.put('empty', '');
  assert.deepEqual(c.get('empty'), Buffer.alloc(0));
  assert.equal(c.getString('empty'), '');
  c.close();
});

test('get returns independent buffers across slab refills', () => {
  const c = open('slab');
  const sizes = [0, 1, 7, 100, 1000, 4095, 4096, 4097, 9000, 16 * 1024, 70 * 1024];
  for (const n of sizes) c.put(`v${n}`, Buffer.alloc(n, n % 251));
  const got = [];
  for (let r = 0; r < 300; r++) {
    for (const n of sizes) got.push([n, c.get(`v${n}`)]);
  }
  for (const [n, b] of got) {
    assert.equal(b.length, n);
    assert.ok(b.every((x) => x === n % 251), `value of ${n} bytes changed`);
  }
  // Writing into one returned buffer leaves the others alone.
  const a = c.get('v100');
  const b = c.get('v100');
  a.fill(0);
  assert.ok(b.every((x) => x === 100));
  c.close();
});

test('expectedEntrySize sizes the index', () => {
  const def = open('ees-default', { capacity: '4MiB' });
  const small = open('ees-small', { capacity: '4MiB', expectedEntrySize: 24 });
  // 4 slots (32 B) per expected entry: 24-byte entries (80-byte items) get
  // (184 + 32) / (80 + 32) = 1.9x the slots of the default (184-byte items).
  assert.ok(small.stats().index_slots > 1.8 * def.stats().index_slots);
  const v = Buffer.alloc(8);
  for (let i = 0; i < 30_000; i++) {
    v.writeUInt32LE(i, 0);
    small.put(`counter:${String(i).padStart(8, '0')}`, v);
  }
  assert.equal(small.stats().entries, 30_000);
  throwsCode(() => new Cache(segName('ees-zero'), { capacity: '4MiB', expectedEntrySize: 0 }), Error, 'InvalidArgument');
  throwsCode(() => new Cache(segName('ees-str'), { expectedEntrySize: 'big' }), Error, 'InvalidArgument');
  def.close();
  small.close();
});

test('large values go past the scratch buffer', () => {
  const c = open('large', { capacity: '16MiB' });
  const big = Buffer.alloc(c.maxValueSize, 0x61);
  big[big.length - 1] = 0x62;
  c.put('big', big);
  assert.deepEqual(c.get('big'), big);
  assert.equal(c.getString('big'), big.toString());
  const s = 'ü'.repeat(100_000); // 200,000 bytes of UTF-8 from a string
  c.put('bigstr', s);
  assert.equal(c.getString('bigstr'), s);
  assert.equal(c.get('bigstr').length, 200_000);
  throwsCode(() => c.put('toobig', Buffer.alloc(c.maxValueSize + 1)), RangeError, 'ValueTooLarge');
  assert.equal(c.get('toobig'), null);
  c.close();
});

// A Uint8Array view at a non-zero offset of a larger ArrayBuffer.
function offsetView(bytes, offset) {
  const whole = new Uint8Array(bytes.length + offset + 5);
  whole.fill(0x7a);
  whole.set(bytes, offset);
  return new Uint8Array(whole.buffer, offset, bytes.length);
}

test('key and value type matrix', () => {
  const c = open('matrix');
  const text = 'ключ:😀';
  const keys = {
    string: text,
    Buffer: Buffer.from(text),
    Uint8Array: new Uint8Array(Buffer.from(text)),
    'offset Uint8Array': offsetView(Buffer.from(text), 2),
  };
  const values = {
    string: 'välue 😀',
    Buffer: Buffer.from('välue 😀'),
    Uint8Array: new Uint8Array(Buffer.from('välue 😀')),
    'offset Uint8Array': offsetView(Buffer.from('välue 😀'), 3),
  };
  for (const [kn, k] of Object.entries(keys)) {
    for (const [vn, v] of Object.entries(values)) {
      c.put(k, v);
      for (const k2 of Object.values(keys)) {
        assert.equal(c.getString(k2), 'välue 😀', `put key ${kn} value ${vn}`);
        assert.deepEqual(c.get(k2), Buffer.from('välue 😀'));
      }
      assert.equal(c.delete(k), true);
    }
  }
  // Binary keys and values, including bytes that are not UTF-8.
  const bk = Buffer.from([0, 0xff, 0xfe, 1]);
  const bv = Buffer.from([0xc3, 0x28, 0, 0xff]);
  c.put(bk, bv);
  assert.deepEqual(c.get(bk), bv);
  assert.deepEqual(c.keyBuffers(), [bk]);
  // A key that is only the first bytes of another key is a different key.
  c.put('ab', '1');
  assert.equal(c.get('a'), null);
  // Longest key: 4096 bytes, as a string and as multi-byte text.
  const longKey = 'k'.repeat(4096);
  c.put(longKey, 'v');
  assert.equal(c.getString(longKey), 'v');
  const longUtf8 = 'é'.repeat(2048); // 4096 bytes
  c.put(longUtf8, 'w');
  assert.equal(c.getString(longUtf8), 'w');
  for (const tooLong of ['k'.repeat(4097), 'é'.repeat(2049), '😀'.repeat(1025), 'x'.repeat(100_000), Buffer.alloc(4097)]) {
    throwsCode(() => c.put(tooLong, 'v'), RangeError, 'KeyTooLong');
    throwsCode(() => c.get(tooLong), RangeError, 'KeyTooLong');
  }
  throwsCode(() => c.put('', 'v'), RangeError, 'KeyTooLong');
  throwsCode(() => c.get(Buffer.alloc(0)), RangeError, 'KeyTooLong');
  // Wrong types.
  for (const bad of [1, null, undefined, {}, [1], true, 10n, Symbol('s'), new ArrayBuffer(2), new Uint16Array(2)]) {
    if (bad instanceof Uint8Array) continue;
    throwsCode(() => c.get(bad), TypeError, 'ERR_INVALID_ARG_TYPE');
    throwsCode(() => c.put(bad, 'v'), TypeError, 'ERR_INVALID_ARG_TYPE');
    throwsCode(() => c.put('k', bad), TypeError, 'ERR_INVALID_ARG_TYPE');
    throwsCode(() => c.delete(bad), TypeError, 'ERR_INVALID_ARG_TYPE');
  }
  throwsCode(() => c.getInto('k', 'buf'), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => c.put('k', 'v', 5), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => c.put('k', 'v', { ttl: '5' }), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => c.put('k', 'v', { tags: 'a' }), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => c.put('k', 'v', { tags: [1] }), TypeError, 'ERR_INVALID_ARG_TYPE');
  // getInto with a key that shares memory with the output buffer.
  const shared = Buffer.alloc(64);
  shared.write('ab');
  assert.equal(c.getInto(shared.subarray(0, 2), shared.subarray(8)), 1);
  assert.equal(shared[8], 0x31);
  c.close();
});

test('add, ttl, touch and expiry', async () => {
  const c = open('ttl');
  assert.equal(c.add('a', '1'), true);
  assert.equal(c.add('a', '2'), false);
  assert.equal(c.getString('a'), '1');
  assert.equal(c.ttl('a'), Infinity);
  assert.equal(c.ttl('missing'), null);
  c.put('t', 'v', { ttl: 100 });
  const t = c.ttl('t');
  assert.ok(t > 99 && t <= 100, String(t));
  assert.equal(c.touch('t', 5), true);
  assert.ok(c.ttl('t') <= 5);
  assert.equal(c.touch('missing', 5), false);
  c.put('short', 'v', { ttl: 0.05 });
  assert.equal(c.add('shortadd', 'v', { ttl: 0.05 }), true);
  assert.equal(c.getString('short'), 'v');
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(c.get('short'), null);
  assert.equal(c.get('shortadd'), null);
  assert.equal(c.ttl('short'), null);
  assert.equal(c.add('short', 'again'), true);
  for (const bad of [-1, NaN, Infinity, -Infinity, 1e12]) {
    throwsCode(() => c.put('k', 'v', { ttl: bad }), RangeError, 'InvalidTtl');
    throwsCode(() => c.touch('a', bad), RangeError, 'InvalidTtl');
  }
  throwsCode(() => c.touch('a'), TypeError, 'ERR_INVALID_ARG_TYPE');
  // A segment default TTL applies to puts without one.
  const d = open('defttl', { ttl: 30 });
  d.put('k', 'v');
  assert.ok(d.ttl('k') > 29 && d.ttl('k') <= 30);
  d.put('k2', 'v', { ttl: 0 });
  assert.ok(d.ttl('k2') <= 30);
  d.close();
  c.close();
});

test('incr', () => {
  const c = open('incr');
  assert.equal(c.incr('n'), 1);
  assert.equal(c.incr('n', 41), 42);
  assert.equal(c.getString('n'), '42');
  assert.equal(c.incr('n', -50), -8);
  assert.equal(c.incr('n', 8n), 0);
  assert.equal(c.incr('big', 2n ** 62n), 2n ** 62n);
  assert.equal(typeof c.incr('big', 0), 'bigint');
  throwsCode(() => c.incr('big', 2n ** 62n), Error, 'NotAnInteger');
  c.put('text', 'abc');
  throwsCode(() => c.incr('text'), Error, 'NotAnInteger');
  throwsCode(() => c.incr('n', 1.5), RangeError, 'InvalidArgument');
  throwsCode(() => c.incr('n', 2 ** 60), RangeError, 'InvalidArgument');
  throwsCode(() => c.incr('n', 2n ** 64n), RangeError, 'InvalidArgument');
  throwsCode(() => c.incr('n', '1'), TypeError, 'ERR_INVALID_ARG_TYPE');
  c.incr('withttl', 1, { ttl: 10 });
  assert.ok(c.ttl('withttl') <= 10);
  c.close();
});

test('tags, deletePrefix, clear, keys, stats', () => {
  const c = open('admin');
  c.put('p:1', 'a', { tags: ['product:1', Buffer.from('all')] });
  c.put('p:2', 'b', { tags: ['product:2', 'all'] });
  c.put('q:1', 'c');
  assert.deepEqual(c.keys().sort(), ['p:1', 'p:2', 'q:1']);
  assert.deepEqual(c.keys('p:').sort(), ['p:1', 'p:2']);
  assert.deepEqual(c.keys(Buffer.from('q')), ['q:1']);
  assert.deepEqual(c.keyBuffers('q:'), [Buffer.from('q:1')]);
  c.invalidateTag('product:1');
  assert.equal(c.get('p:1'), null);
  assert.equal(c.getString('p:2'), 'b');
  c.invalidateTag(Buffer.from('all'));
  assert.equal(c.get('p:2'), null);
  c.put('p:3', 'x');
  c.put('p:4', 'x');
  assert.equal(c.deletePrefix('p:'), 2);
  assert.deepEqual(c.keys(), ['q:1']);
  c.clear();
  assert.equal(c.get('q:1'), null);
  assert.deepEqual(c.keys(), []);
  const tags = Array.from({ length: 9 }, (_, i) => `t${i}`);
  throwsCode(() => c.put('k', 'v', { tags }), RangeError, 'InvalidArgument');
  throwsCode(() => c.invalidateTag(5), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => c.deletePrefix(null), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => c.keys(5), TypeError, 'ERR_INVALID_ARG_TYPE');

  c.put('s', 'v');
  c.get('s');
  c.get('nope');
  const s = c.stats();
  for (const f of ['capacity_bytes', 'used_bytes', 'entries', 'hits', 'misses', 'inserts', 'updates',
    'deletes', 'evictions', 'expirations', 'get_or_set_waits', 'layout_version']) {
    assert.equal(typeof s[f], 'number', f);
  }
  assert.equal(s.capacity_bytes, 8 << 20);
  assert.equal(s.layout_version, memshelf.LAYOUT_VERSION);
  assert.ok(s.hits >= 1 && s.misses >= 1 && s.inserts >= 1 && s.deletes >= 1);
  c.close();
});

test('eviction: puts never fail when full', () => {
  const c = open('evict', { capacity: '1MiB' });
  const v = Buffer.alloc(1000, 1);
  for (let i = 0; i < 5000; i++) c.put(`k${i}`, v);
  assert.ok(c.stats().evictions > 0);
  assert.deepEqual(c.get('k4999'), v);
  c.close();
});

test('closed handle throws Closed everywhere', async () => {
  const c = open('closed');
  c.put('k', 'v');
  c.close();
  c.close(); // idempotent
  assert.equal(c.closed, true);
  const calls = [
    () => c.get('k'), () => c.getString('k'), () => c.getInto('k', Buffer.alloc(4)), () => c.has('k'),
    () => c.put('k', 'v'), () => c.put('k', 'v', { ttl: 1 }), () => c.add('k', 'v'), () => c.delete('k'),
    () => c.incr('k'), () => c.ttl('k'), () => c.touch('k', 1), () => c.invalidateTag('t'),
    () => c.deletePrefix('k'), () => c.clear(), () => c.keys(), () => c.keyBuffers(), () => c.stats(),
  ];
  for (const f of calls) throwsCode(f, Error, 'Closed');
  await assert.rejects(c.getOrSet('k', async () => 'v'), (e) => e.code === 'Closed');
});

test('unlink', () => {
  const name = segName('unlink');
  const c = new Cache(name, { capacity: '1MiB' });
  c.put('k', 'v');
  unlink(name);
  // Attached handles keep working on their mapping.
  assert.equal(c.getString('k'), 'v');
  throwsCode(() => new Cache(name, { create: false }), Error, 'NotFound');
  throwsCode(() => unlink(name), Error, 'NotFound');
  throwsCode(() => unlink('bad/name'), RangeError, 'InvalidName');
  throwsCode(() => unlink(5), TypeError, 'ERR_INVALID_ARG_TYPE');
  c.close();
});

test('invalidationMessage', () => {
  const { invalidationMessage: msg } = memshelf;
  assert.equal(msg({ op: 'del', keys: ['user:42', 'user:43'] }), '{"v":1,"op":"del","keys":["user:42","user:43"]}');
  assert.deepEqual(JSON.parse(msg({ op: 'del', keys: ['a', Buffer.from([0xff])], cache: 'users' })),
    { v: 1, op: 'del', keys: ['a'], keys_b64: ['/w=='], cache: 'users' });
  assert.deepEqual(JSON.parse(msg({ op: 'del_prefix', prefix: 'user:' })), { v: 1, op: 'del_prefix', prefix: 'user:' });
  assert.deepEqual(JSON.parse(msg({ op: 'tag', tag: 'product:7' })), { v: 1, op: 'tag', tag: 'product:7' });
  assert.deepEqual(JSON.parse(msg({ op: 'clear', origin: 'host-a:1', seq: 7, ts: 1700000000000 })),
    { v: 1, op: 'clear', origin: 'host-a:1', seq: 7, ts: 1700000000000 });
  assert.deepEqual(JSON.parse(msg({ op: 'hb' })), { v: 1, op: 'hb' });
  throwsCode(() => msg({ op: 'nope' }), RangeError, 'InvalidArgument');
  throwsCode(() => msg({ op: 'tag' }), RangeError, 'InvalidArgument');
  throwsCode(() => msg({ op: 'del' }), RangeError, 'InvalidArgument');
  // One rule in every language (core::message): an origin alone is allowed
  // (a host skips its own messages), a seq needs its origin.
  assert.deepEqual(JSON.parse(msg({ op: 'hb', origin: 'x' })), { v: 1, op: 'hb', origin: 'x' });
  throwsCode(() => msg({ op: 'hb', seq: 1 }), RangeError, 'InvalidArgument');
  throwsCode(() => msg({ op: 'del', keys: [] }), RangeError, 'InvalidArgument');
  throwsCode(() => msg({ op: 'del_prefix', prefix: '' }), RangeError, 'InvalidArgument');
  throwsCode(() => msg({ op: 'tag', tag: 'x', keys: ['k'] }), RangeError, 'InvalidArgument');
  throwsCode(() => msg({ op: 'hb', origin: 'x', seq: -1 }), RangeError, 'InvalidArgument');
  throwsCode(() => msg({ op: 5 }), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => msg({ op: 'del', keys: 'a' }), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(() => msg({ op: 'hb', cache: 5 }), TypeError, 'ERR_INVALID_ARG_TYPE');
});
