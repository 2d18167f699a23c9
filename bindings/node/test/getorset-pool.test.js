'use strict';
// getOrSet waiters must not occupy libuv's thread pool: while another
// process holds the lease and 8 getOrSet calls wait here, fs work (which
// runs on that pool, 4 threads by default) keeps its normal latency.
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { memshelf, segName, cleanup } = require('../testlib/util.js');

after(cleanup);

const CHILD = path.join(__dirname, '..', 'testlib', 'child.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function nextMessage(child) {
  return new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before answering`)));
  });
}

test('fs.readFile stays fast with 8 getOrSet waiters pending (lease held by another process)', async () => {
  const name = segName('pool');
  const c = new memshelf.Cache(name, { capacity: '8MiB' });
  const file = path.join(os.tmpdir(), `memshelf-pool-${process.pid}.txt`);
  fs.writeFileSync(file, 'x'.repeat(4096));
  const child = fork(CHILD, ['gos-hold', name, 'held'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    assert.deepEqual(await nextMessage(child), { leading: true });
    const waitsBefore = c.stats().get_or_set_waits;
    let ran = 0;
    const waiters = Array.from({ length: 8 }, () => c.getOrSet('held', () => {
      ran++;
      return 'not me';
    }, { lease: 60 }));
    await sleep(200); // every waiter is now parked (on the old pool design: 4 pool threads busy)
    const lat = [];
    for (let i = 0; i < 7; i++) {
      const t0 = process.hrtime.bigint();
      await fs.promises.readFile(file);
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    lat.sort((a, b) => a - b);
    const median = lat[3];
    assert.ok(median < 10, `readFile median ${median.toFixed(2)} ms with 8 waiters (all: ${lat.map((x) => x.toFixed(2)).join(', ')})`);
    // Each waiting call is counted once.
    assert.equal(c.stats().get_or_set_waits - waitsBefore, 8);
    // The holder fills: every waiter gets its value, none ran its factory.
    const done = nextMessage(child);
    child.send({ value: 'from the holder' });
    const values = await Promise.all(waiters);
    for (const v of values) assert.deepEqual(v, Buffer.from('from the holder'));
    assert.equal(ran, 0);
    assert.deepEqual(await done, { value: 'from the holder' });
  } finally {
    child.kill('SIGKILL');
    fs.rmSync(file, { force: true });
    c.close();
  }
});

test('a waiter wakes promptly when the fill ends (no polling delay)', async () => {
  const name = segName('wake');
  const c = new memshelf.Cache(name, { capacity: '8MiB' });
  const child = fork(CHILD, ['gos-hold', name, 'k'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    assert.deepEqual(await nextMessage(child), { leading: true });
    const p = c.getOrSet('k', () => 'no');
    await sleep(120);
    const t0 = process.hrtime.bigint();
    child.send({ value: 'v' });
    assert.deepEqual(await p, Buffer.from('v'));
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    // The IPC hop plus the futex wake; far below the 50 ms re-ask period.
    assert.ok(ms < 40, `woke after ${ms.toFixed(1)} ms`);
  } finally {
    child.kill('SIGKILL');
    c.close();
  }
});
