'use strict';
// Lone surrogates, the json codec, getMany/putMany, and the addon the
// package loaded (release, stripped, from the platform package when
// installed).
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { memshelf, segName, cleanup } = require('../testlib/util.js');

const { Cache } = memshelf;

after(cleanup);

function open(tag, opts = {}) {
  return new Cache(segName(tag), { capacity: '8MiB', ...opts });
}

function surrogateError(e) {
  assert.ok(e instanceof TypeError, `expected TypeError, got ${e.constructor.name}: ${e.message}`);
  assert.equal(e.code, 'ERR_INVALID_ARG_VALUE');
  assert.match(e.message, /lone surrogate/);
  return true;
}

test('lone surrogates in string keys, values, tags and prefixes are TypeErrors', async () => {
  const c = open('surrogate');
  const lone = ['a\uD800', 'a\uDC00', '\uD800', 'x\uDFFFy', 'a\uD800\uD800'];
  // Without the check these would all be the key "a\uFFFD" (or similar).
  for (const k of lone) {
    assert.throws(() => c.put(k, 'v'), surrogateError);
    assert.throws(() => c.get(k), surrogateError);
    assert.throws(() => c.getString(k), surrogateError);
    assert.throws(() => c.has(k), surrogateError);
    assert.throws(() => c.delete(k), surrogateError);
    assert.throws(() => c.put('k', k), surrogateError);
    assert.throws(() => c.add('k', k), surrogateError);
    assert.throws(() => c.put('k', 'v', { tags: [k] }), surrogateError);
    assert.throws(() => c.invalidateTag(k), surrogateError);
    assert.throws(() => c.deletePrefix(k), surrogateError);
    assert.throws(() => c.keys(k), surrogateError);
    assert.throws(() => c.getMany(['ok', k]), surrogateError);
    assert.throws(() => c.putMany([[k, 'v']]), surrogateError);
    assert.throws(() => c.putMany([['k', k]]), surrogateError);
    await assert.rejects(c.getOrSet(k, () => 'v'), surrogateError);
    await assert.rejects(c.getOrSet('gos', () => k), surrogateError);
  }
  for (const k of lone) assert.throws(() => c.getInto(k, Buffer.alloc(8)), surrogateError);
  // A real U+FFFD is a character like any other (the addon's fast check
  // looks at the UTF-16 form when it sees one).
  c.put('r\uFFFD', 'replacement');
  assert.equal(c.getString('r\uFFFD'), 'replacement');
  assert.equal(c.get('r\uFFFD').toString(), 'replacement');
  assert.throws(() => c.has('r\uFFFD\uD800'), surrogateError);
  assert.throws(() => c.get('\uFFFD\uDBFF'), surrogateError);
  c.delete('r\uFFFD');
  // A long value (past the value buffer) is checked too.
  assert.throws(() => c.put('k', 'x'.repeat(100_000) + '\uD800'), surrogateError);
  // Nothing was stored by any of the refused calls.
  assert.deepEqual(c.keys(), []);
  // Well-formed surrogate pairs are fine and round-trip.
  c.put('emoji:\u{1F600}', 'v\u{1F601}');
  assert.equal(c.getString('emoji:\u{1F600}'), 'v\u{1F601}');
  assert.deepEqual(c.keys(), ['emoji:\u{1F600}']);
  c.close();
});

test('keys converted by the addon: lengths, types, like the wrapper', () => {
  const c = open('keyconv');
  const tooLong = (len) => (e) => e instanceof RangeError && e.code === 'KeyTooLong' && e.message.includes(String(len));
  for (const n of [4097, 5000, 12289, 20000]) {
    const k = 'k'.repeat(n);
    assert.throws(() => c.get(k), tooLong(n));
    assert.throws(() => c.getString(k), tooLong(n));
    assert.throws(() => c.has(k), tooLong(n));
    assert.throws(() => c.getInto(k, Buffer.alloc(4)), tooLong(n));
    assert.throws(() => c.get(Buffer.alloc(n, 'k')), tooLong(n));
  }
  // 4096 bytes is the limit, also when the characters are multi-byte.
  c.put('\u00e9'.repeat(2048), 'max');
  assert.equal(c.getString('\u00e9'.repeat(2048)), 'max');
  assert.throws(() => c.get('\u00e9'.repeat(2049)), tooLong(4098));
  assert.throws(() => c.get(''), (e) => e.code === 'KeyTooLong');
  for (const bad of [5, null, undefined, {}, new Int8Array(2), new Uint16Array(2), Symbol('s')]) {
    assert.throws(() => c.get(bad), (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE');
    assert.throws(() => c.getString(bad), (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE');
    assert.throws(() => c.has(bad), (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE');
  }
  // Byte keys: Buffers, Uint8Arrays and views into larger buffers.
  const big = Buffer.from('xxkeyxx');
  c.put(big.subarray(2, 5), 'v');
  assert.equal(c.getString(new Uint8Array([0x6b, 0x65, 0x79])), 'v');
  assert.equal(c.getString('key'), 'v');
  assert.deepEqual(c.get(big.subarray(2, 5)), Buffer.from('v'));
  // A sliced or concatenated (non-flat) string works like its flat copy.
  const parts = ['user:', String(42), ':', 'x'.repeat(30)];
  const cons = parts.join('');
  c.put(cons, 'cons');
  assert.equal(c.getString(parts[0] + parts[1] + parts[2] + parts[3]), 'cons');
  assert.equal(c.getString(('..' + cons).slice(2)), 'cons');
  c.close();
});

test("codec 'json': any JSON value in, parsed values out", async () => {
  const name = segName('json');
  const j = new Cache(name, { capacity: '8MiB', codec: 'json' });
  const raw = new Cache(name);
  assert.equal(j.codec, 'json');
  assert.equal(raw.codec, 'raw');
  const v = { a: 1, b: [true, null, 'x\u00e9'], c: { d: 1.5 } };
  j.put('obj', v);
  assert.deepEqual(j.get('obj'), v);
  assert.equal(raw.getString('obj'), JSON.stringify(v)); // stored as UTF-8 JSON text
  j.put('n', 42);
  assert.equal(j.get('n'), 42);
  j.put('s', 'text');
  assert.equal(j.get('s'), 'text');
  j.put('null', null);
  assert.equal(j.get('null'), null);
  assert.equal(j.has('null'), true);
  assert.equal(j.get('missing'), null);
  assert.equal(j.has('missing'), false);
  // incr's decimal text is a JSON number.
  j.incr('ctr', 5);
  assert.equal(j.get('ctr'), 5);
  assert.equal(j.add('obj', 1), false);
  assert.equal(j.add('new', [1, 2]), true);
  assert.deepEqual(j.get('new'), [1, 2]);
  // Large values (past the value buffer) work.
  const big = { s: 'y'.repeat(200_000) };
  j.put('big', big);
  assert.deepEqual(j.get('big'), big);
  // Batch forms use the codec.
  j.putMany([['m1', { x: 1 }], ['m2', [2]]]);
  assert.deepEqual(j.getMany(['m1', 'missing', 'm2', 'big']), [{ x: 1 }, null, [2], big]);
  // getOrSet stores the factory's value as JSON and returns values parsed.
  let runs = 0;
  const f = async () => {
    runs++;
    return { from: 'factory' };
  };
  assert.deepEqual(await j.getOrSet('gos', f), { from: 'factory' });
  assert.deepEqual(await j.getOrSet('gos', f), { from: 'factory' });
  assert.equal(runs, 1);
  assert.equal(raw.getString('gos'), '{"from":"factory"}');
  // What JSON cannot encode is a TypeError; nothing is stored.
  for (const bad of [undefined, () => 1, Symbol('s')]) {
    assert.throws(() => j.put('bad', bad), TypeError);
  }
  assert.throws(() => j.put('bad', 1n), TypeError); // JSON.stringify's own TypeError
  assert.equal(j.has('bad'), false);
  // Unknown codecs are refused.
  assert.throws(() => new Cache(name, { codec: 'pickle' }), (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_VALUE');
  j.close();
  raw.close();
});

test('getMany / putMany: one call, each key as its single form', () => {
  const c = open('batch', { capacity: '16MiB', maxValueSize: '1MiB' });
  assert.deepEqual(c.getMany([]), []);
  c.putMany([]);
  const items = [];
  for (let i = 0; i < 500; i++) items.push([`k${i}`, `value-${i}-`.repeat(i % 7)]);
  items.push([Buffer.from([0, 255, 1]), new Uint8Array([9, 9])]);
  items.push(['large', Buffer.alloc(40_000, 'L')]); // larger than the slab's room
  items.push(['huge', Buffer.alloc(600_000, 'H')]);
  c.putMany(items);
  const keys = items.map(([k]) => k);
  keys.splice(3, 0, 'missing-1');
  keys.push('missing-2');
  const got = c.getMany(keys);
  assert.equal(got.length, keys.length);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    const single = c.get(k);
    if (single === null) assert.equal(got[i], null, String(k));
    else assert.deepEqual(got[i], single, String(k));
  }
  assert.equal(got[3], null);
  assert.equal(got[got.length - 1], null);
  assert.deepEqual(got[0], Buffer.from(''));
  assert.deepEqual(got[keys.indexOf('huge')], Buffer.alloc(600_000, 'H'));
  // Results are independent copies.
  got[1][0] = 0x21;
  assert.notEqual(c.get('k1')[0], 0x21);
  // A Map is an iterable of pairs; ttl applies to every item.
  c.putMany(new Map([['t1', 'a'], ['t2', 'b']]), { ttl: 60 });
  assert.ok(c.ttl('t1') > 59 && c.ttl('t2') <= 60);
  // Errors: types, limits (the first refused item throws, earlier ones stay).
  assert.throws(() => c.getMany('k1'), TypeError);
  assert.throws(() => c.getMany([1]), TypeError);
  assert.throws(() => c.putMany(5), TypeError);
  assert.throws(() => c.putMany([['a']]), TypeError);
  assert.throws(() => c.putMany([['a', 5]]), TypeError);
  assert.throws(() => c.putMany([['ok-first', 'v'], ['x'.repeat(5000), 'v']]), (e) => e instanceof RangeError && e.code === 'KeyTooLong');
  assert.equal(c.getString('ok-first'), 'v');
  assert.throws(() => c.putMany([['', 'v']]), (e) => e.code === 'KeyTooLong');
  assert.throws(() => c.putMany([['v', Buffer.alloc(2 << 20)]]), (e) => e instanceof RangeError && e.code === 'ValueTooLarge');
  assert.throws(() => c.getMany(['']), (e) => e.code === 'KeyTooLong');
  assert.throws(() => c.putMany([['a', 'b']], { ttl: -1 }), (e) => e.code === 'InvalidTtl');
  // Counters: a getMany counts a hit or miss per key.
  const before = c.stats();
  c.getMany(['k1', 'k2', 'nope']);
  const after = c.stats();
  assert.equal(after.hits - before.hits, 2);
  assert.equal(after.misses - before.misses, 1);
  c.close();
  assert.throws(() => c.getMany(['k1']), (e) => e.code === 'Closed');
  assert.throws(() => c.putMany([['k1', 'v']]), (e) => e.code === 'Closed');
});

test('getMany keys of every form: ASCII, other text, surrogate pairs, bytes, mixed, large batches', () => {
  const c = open('batch-keys', { capacity: '16MiB' });
  const text = ['plain', 'caf\u00e9', '\u{1F600}', 'a\u{1F600}b', '\u0000nul', '\u00ff', 'x'.repeat(4096)];
  for (const k of text) c.put(k, `v:${k}`);
  c.put(Buffer.from([0xff, 0]), 'bytes');
  // Each batch answers as the single gets do (the ASCII batches take the
  // one-write packing, the others the per-key one).
  const batches = [
    ['plain', 'x'.repeat(4096), '\u0000nul', 'nope'],
    text,
    ['caf\u00e9', 'plain'],
    ['plain', Buffer.from([0xff, 0]), '\u00ff'],
    [Buffer.from('plain'), 'plain'],
  ];
  for (const keys of batches) {
    const got = c.getMany(keys);
    assert.deepEqual(got, keys.map((k) => c.get(k)), String(keys.map(String)));
  }
  assert.equal(c.getMany(['caf\u00e9'])[0].toString(), 'v:caf\u00e9');
  // A batch larger than the packing buffer (16 KiB) of ASCII keys.
  const many = [];
  for (let i = 0; i < 3000; i++) many.push(`key-${i}-`.padEnd(24, 'p'));
  c.putMany(many.filter((_, i) => i % 3 === 0).map((k) => [k, k]));
  const got = c.getMany(many);
  for (let i = 0; i < many.length; i++) {
    assert.equal(got[i] === null ? null : got[i].toString(), i % 3 === 0 ? many[i] : null, many[i]);
  }
  // A batch of more than 2^20 key characters is packed key by key.
  const big = Array.from({ length: 1200 }, (_, i) => `${i}:`.padEnd(1000, 'b'));
  c.put(big[1199], 'last');
  const bigGot = c.getMany(big);
  assert.equal(bigGot.filter((v) => v !== null).length, 1);
  assert.equal(bigGot[1199].toString(), 'last');
  // The two halves of a surrogate pair in adjacent keys are two lone
  // surrogates (their concatenation would be well-formed).
  assert.throws(() => c.getMany(['a\uD83D', '\uDE00b']), surrogateError);
  assert.throws(() => c.getMany(['ok', 'x\uD800']), surrogateError);
  // Limits and types as before: a key too long, an empty key, a number.
  assert.throws(() => c.getMany(['plain', 'x'.repeat(4097)]), (e) => e instanceof RangeError && e.code === 'KeyTooLong');
  assert.throws(() => c.getMany(['plain', '']), (e) => e.code === 'KeyTooLong');
  assert.throws(() => c.getMany(['plain', 7]), TypeError);
  c.close();
});

test('the loaded addon is a stripped release build (from the platform package when installed)', () => {
  const native = require(path.join(path.dirname(require.resolve('memshelf')), 'native.js'));
  assert.equal(native.isDebugBuild(), false, 'a debug addon was loaded');
  if (process.env.MEMSHELF_EXPECT_INSTALLED) {
    // The installed main package ships no addon of its own; the loader
    // found the platform package.
    const pkgDir = path.dirname(require.resolve('memshelf/package.json'));
    assert.deepEqual(fs.readdirSync(pkgDir).filter((f) => f.endsWith('.node')), []);
    const plat = require.resolve('memshelf-linux-x64-gnu', { paths: [pkgDir] });
    const addon = path.join(path.dirname(plat), 'memshelf.linux-x64-gnu.node');
    const loaded = fs.readFileSync(`/proc/${process.pid}/maps`, 'utf8');
    assert.ok(loaded.includes(fs.realpathSync(addon)), `${addon} is not mapped`);
    // Stripped: no symbol table section (only the dynamic symbols).
    assert.equal(fs.readFileSync(addon).includes('.symtab'), false, `${addon} is not stripped`);
    const main = require(path.join(pkgDir, 'package.json'));
    assert.deepEqual(Object.keys(main.optionalDependencies).sort(),
      ['memshelf-linux-arm64-gnu', 'memshelf-linux-arm64-musl', 'memshelf-linux-x64-gnu', 'memshelf-linux-x64-musl']);
    assert.equal(main.devDependencies, undefined);
    assert.equal(main.scripts, undefined); // nothing runs (or builds) at install time
    assert.equal(main.engines.node, '>=20');
    const meta = require(require.resolve('memshelf-linux-x64-gnu/package.json', { paths: [pkgDir] }));
    assert.deepEqual([meta.os, meta.cpu, meta.libc], [['linux'], ['x64'], ['glibc']]);
  }
});
