'use strict';
// Inputs an audit found mishandled (4 Dec): each test failed before its
// fix. A transferred `get` result, a batch too large to allocate for, a
// value in memory another thread writes, the most negative counter, a
// mode past 32 bits, a worker stopped while it waits in getOrSet.
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { Worker } = require('node:worker_threads');
const { memshelf, segName, cleanup } = require('../testlib/util.js');

const { Cache } = memshelf;

after(cleanup);

function open(tag, opts = {}) {
  return new Cache(segName(tag), { capacity: '8MiB', ...opts });
}

test('transferring a get result copies it: the shared slab is never detached', () => {
  const c = open('transfer');
  c.put('a', 'A'.repeat(100));
  c.put('z', 'Z'.repeat(3000));
  const v = c.get('a');
  try {
    structuredClone(v.buffer, { transfer: [v.buffer] });
  } catch (e) {
    assert.equal(e.name, 'DataCloneError', `unexpected ${e}`);
  }
  assert.ok(v.buffer.byteLength > 0, 'the slab was detached');
  assert.equal(v.toString(), 'A'.repeat(100));
  // Later gets still land in live memory of their own.
  assert.equal(c.get('z').toString(), 'Z'.repeat(3000));
  assert.deepEqual(c.getMany(['a', 'z']).map(String), ['A'.repeat(100), 'Z'.repeat(3000)]);
  c.close();
});

test('a batch too large to allocate for throws and leaves later batches working', () => {
  const c = open('hugebatch');
  assert.throws(() => c.getMany(new Array(1e9)), RangeError);
  const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
  c.putMany(keys.map((k) => [k, `v-${k}`]));
  assert.deepEqual(c.getMany(keys).map(String), keys.map((k) => `v-${k}`));
  c.close();
});

test('put of a value in memory another thread is writing stores a value', async () => {
  const c = open('sab');
  const sab = new SharedArrayBuffer(4096);
  const u = new Uint8Array(sab);
  const w = new Worker(
    `const { workerData } = require('node:worker_threads');
     const u = new Uint8Array(workerData);
     for (let n = 0; ; n++) u.fill(n & 0xff);`,
    { eval: true, workerData: sab },
  );
  await new Promise((r) => setTimeout(r, 100));
  let lost = 0;
  for (let i = 0; i < 500; i++) {
    c.put('s', u);
    if (c.get('s') === null) lost++;
  }
  await w.terminate();
  assert.equal(lost, 0, `${lost} of 500 puts stored nothing`);
  c.close();
});

test('incr to the most negative 64-bit integer returns a bigint', () => {
  const c = open('incrmin');
  const min = -(2n ** 63n);
  const r = c.incr('m', min);
  assert.equal(typeof r, 'bigint');
  assert.equal(r, min);
  c.close();
});

test('a mode outside 0o777 is a RangeError, not another mode', () => {
  for (const mode of [2 ** 32 + 0o644, -1, 0o1000]) {
    assert.throws(
      () => new Cache(segName('mode'), { capacity: '1MiB', mode }),
      (e) => e instanceof RangeError && e.code === 'InvalidArgument' && /0o777/.test(e.message),
      `mode ${mode}`,
    );
  }
});

test('stopping workers that wait in getOrSet does not crash the process', () => {
  // In a child process: a crash there (SIGSEGV, SIGABRT) is this test's
  // failure, not the runner's.
  const name = segName('wterm');
  const script = `
    const { Cache, unlink } = require('memshelf');
    const { Worker } = require('node:worker_threads');
    const c = new Cache(${JSON.stringify(name)}, { capacity: '1MiB' });
    let release;
    const leader = c.getOrSet('k', () => new Promise((r) => { release = r; }), { lease: 30 });
    (async () => {
      for (let i = 0; i < 10; i++) {
        const w = new Worker(\`
          const { Cache } = require('memshelf');
          const c = new Cache(${JSON.stringify(name)});
          c.getOrSet('k', () => 'worker');
          setTimeout(() => require('node:worker_threads').parentPort.postMessage('waiting'), 60);
        \`, { eval: true });
        await new Promise((r) => w.once('message', r));
        await w.terminate();
      }
      for (let i = 0; i < 5; i++) {
        const w = new Worker(\`
          const { Cache } = require('memshelf');
          const c = new Cache(${JSON.stringify(name)});
          c.getOrSet('k', () => 'worker');
          setTimeout(() => process.exit(0), 60);
        \`, { eval: true });
        await new Promise((r) => w.once('exit', r));
      }
      release('v');
      console.log('value', String(await leader));
      c.close();
    })();
  `;
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd: __dirname,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.signal, null, `the process died of ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /value v/);
});

test('json codec: a stored value that is not JSON is a CodecError', () => {
  const name = segName('notjson');
  const raw = new Cache(name, { capacity: '1MiB' });
  raw.put('k', 'not json {');
  raw.putMany([['k2', 'nope']]);
  const json = new Cache(name, { codec: 'json' });
  for (const read of [() => json.get('k'), () => json.getMany(['k', 'k2'])]) {
    assert.throws(read, (e) => e.code === 'CodecError' && e.cause instanceof SyntaxError);
  }
  raw.close();
  json.close();
});

test('a key too long to fit the key buffer reports its whole length', () => {
  const c = open('euro');
  const key = '\u20ac'.repeat(4096); // 12,288 bytes of UTF-8
  for (const op of [() => c.get(key), () => c.has(key), () => c.put(key, 'v')]) {
    assert.throws(op, (e) => e.code === 'KeyTooLong' && /12288/.test(e.message), String(op));
  }
  c.close();
});

test('numbers past their limits are RangeErrors that name the limit', () => {
  const c = open('limits');
  for (const n of [-1, 2 ** 32]) {
    assert.throws(() => c.hotKeys(n), (e) => e instanceof RangeError && e.code === 'InvalidArgument', `hotKeys(${n})`);
  }
  assert.throws(() => c.hotKeys(1.5), TypeError);
  assert.throws(
    () => new Cache(segName('cap'), { capacity: 2 ** 60 }),
    (e) => e instanceof RangeError && /above 2\^53/.test(e.message),
  );
  c.close();
});
