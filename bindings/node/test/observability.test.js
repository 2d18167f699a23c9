'use strict';
// Sampled latency, hot keys, dump and load (SPEC 5 and 8) from Node.
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { memshelf, segName, cleanup } = require('../testlib/util.js');

const { Cache } = memshelf;

after(cleanup);

function open(tag, opts = {}) {
  return new Cache(segName(tag), { capacity: '8MiB', ...opts });
}

test('hotKeys: the hottest key first, with counts; stats().hot_key_share', () => {
  const c = open('hot');
  c.put('hot', '1');
  c.put(Buffer.from([0xff, 0x01]), '2');
  for (let i = 0; i < 10000; i++) c.get('hot');
  c.get(Buffer.from([0xff, 0x01]));
  const [top] = c.hotKeys(1);
  assert.equal(top.key, 'hot');
  assert.deepEqual(top.keyBuffer, Buffer.from('hot'));
  assert.ok(Number.isInteger(top.count) && top.count > 0);
  const all = c.hotKeys();
  assert.ok(all.length >= 1 && all.length <= 10);
  const counts = all.map((h) => h.count);
  assert.deepEqual(counts, [...counts].sort((a, b) => b - a));
  assert.deepEqual(c.hotKeys(0), []);
  const share = c.stats().hot_key_share;
  assert.ok(share > 0.9 && share <= 1, `hot_key_share ${share}`);
  // An integer outside the limits is a RangeError (README: errors), not a
  // wrong type: see hardening.test.js.
  assert.throws(() => c.hotKeys(-1), (e) => e instanceof RangeError && e.code === 'InvalidArgument');
  assert.throws(() => c.hotKeys(1.5), { code: 'ERR_INVALID_ARG_TYPE' });
  c.delete('hot');
  assert.ok(!c.hotKeys(10).some((h) => h.key === 'hot'));
  c.close();
  assert.throws(() => c.hotKeys(), { code: 'Closed' });
});

test('stats(): sampled get/put latency, 0 before any sample', () => {
  const c = open('latency');
  let s = c.stats();
  for (const op of ['get', 'put']) {
    assert.equal(s[`${op}_samples`], 0);
    assert.equal(s[`${op}_p50_ns`], 0);
    assert.equal(s[`${op}_p99_ns`], 0);
  }
  assert.equal(s.hot_key_share, 0);
  // Puts, then gets (the engine samples about one get and one put in 64 per
  // thread, at random intervals of 32-95 of each kind).
  for (let i = 0; i < 1000; i++) c.put(`k${i}`, 'v');
  for (let i = 0; i < 1000; i++) c.get(`k${i}`);
  s = c.stats();
  for (const op of ['get', 'put']) {
    const p50 = s[`${op}_p50_ns`];
    const p99 = s[`${op}_p99_ns`];
    assert.ok(s[`${op}_samples`] >= Math.floor(1000 / 96) /* one sample per 32-95 ops */, `${op}_samples ${s[`${op}_samples`]}`);
    assert.ok(p50 > 0 && p50 <= p99, `${op} p50 ${p50} p99 ${p99}`);
    // Log2 bucket upper bounds: powers of two.
    assert.equal(Math.log2(p50) % 1, 0);
    assert.equal(Math.log2(p99) % 1, 0);
  }
  assert.ok(s.hits >= 1000 && s.inserts >= 1000);
  c.close();
});

test('dump and load across segments of other capacities; a truncated dump loads its prefix', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memshelf-node-dump-'));
  try {
    const a = open('dump-a', { capacity: '2MiB' });
    a.put('a', '1', { ttl: 300 });
    a.put(Buffer.from([0xff, 0x62]), 'x'.repeat(1000));
    const file = path.join(dir, 'a.dump');
    assert.deepEqual(a.dump(file), { entries: 2, bytes: fs.statSync(file).size, vanished: 0 });

    const b = open('dump-b', { capacity: '16MiB' });
    b.put('a', 'newer');
    assert.deepEqual(b.load(file), {
      records: 2, loaded: 1, expired: 0, kept_newer: 1, rejected: 0,
      expected: 2, skipped: 0, complete: true, problem: null,
    });
    assert.equal(b.getString('a'), 'newer');
    assert.equal(b.getString(Buffer.from([0xff, 0x62])), 'x'.repeat(1000));
    b.clear();
    assert.equal(b.load(file).loaded, 2);
    const ttl = b.ttl('a');
    assert.ok(ttl > 290 && ttl <= 300, `ttl ${ttl}`);

    const cut = path.join(dir, 'cut.dump');
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
    b.clear();
    const r = b.load(cut);
    assert.equal(r.complete, false);
    assert.match(r.problem, /truncated/);
    assert.deepEqual([r.expected, r.records, r.skipped, r.loaded], [2, 1, 1, 1]);

    assert.throws(() => b.load(path.join(dir, 'missing.dump')), { code: 'Io' });
    assert.throws(() => b.dump(''), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => b.load(42), { code: 'ERR_INVALID_ARG_TYPE' });
    a.close();
    b.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
