'use strict';
// Several processes and threads on one segment: self-checking values,
// getOrSet across processes, a SIGKILLed writer, worker_threads.
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { fork } = require('node:child_process');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { memshelf, segName, cleanup, checkValue } = require('../testlib/util.js');

after(cleanup);

const CHILD = path.join(__dirname, '..', 'testlib', 'child.js');

function start(args) {
  const child = fork(CHILD, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const messages = [];
  const waiters = [];
  child.on('message', (m) => {
    if (waiters.length) waiters.shift()(m);
    else messages.push(m);
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const next = () => (messages.length ? Promise.resolve(messages.shift()) : new Promise((r) => waiters.push(r)));
  return { child, next, exited };
}

test('4 processes write and read self-checking values', async () => {
  const name = segName('rw');
  // Large enough that the done:N counters are not evicted: the children
  // write about 2 MB in all, less than the small FIFO (a tenth).
  const c = new memshelf.Cache(name, { capacity: '64MiB' });
  const kids = [0, 1, 2, 3].map((id) => start(['rw', name, String(id), '3000']));
  const results = await Promise.all(kids.map((k) => k.next()));
  const exits = await Promise.all(kids.map((k) => k.exited));
  for (const r of results) assert.equal(r.error, undefined, r.error);
  for (const r of results) assert.equal(r.bad, 0, 'a torn or foreign value was read');
  assert.ok(results.reduce((a, r) => a + r.hits, 0) > 0);
  for (const e of exits) assert.equal(e.code, 0);
  for (let id = 0; id < 4; id++) assert.equal(c.getString(`done:${id}`), '1', `done:${id}`);
  for (let i = 0; i < 64; i++) {
    const v = c.get(`shared:${i}`);
    if (v !== null) assert.ok(checkValue(v));
  }
  c.close();
});

test('getOrSet runs the factory once across 4 processes', async () => {
  const name = segName('gos');
  const c = new memshelf.Cache(name, { capacity: '8MiB' });
  const kids = [0, 1, 2, 3].map(() => start(['gos', name, 'expensive']));
  for (const k of kids) assert.deepEqual(await k.next(), { ready: true });
  for (const k of kids) k.child.send('go');
  const results = await Promise.all(kids.map((k) => k.next()));
  await Promise.all(kids.map((k) => k.exited));
  for (const r of results) assert.equal(r.error, undefined, r.error);
  const values = new Set(results.map((r) => r.value));
  assert.equal(values.size, 1, [...values].join(' | '));
  assert.match([...values][0], /^computed by \d+$/);
  assert.equal(c.getString('factory-runs'), '1');
  assert.equal(c.getString('expensive'), [...values][0]);
  c.close();
});

test('a writer killed with SIGKILL does not disturb the others', async () => {
  const name = segName('kill');
  const c = new memshelf.Cache(name, { capacity: '8MiB' });
  const victim = start(['spin', name]);
  assert.deepEqual(await victim.next(), { ready: true });
  const others = [0, 1].map((id) => start(['rw', name, String(id), '3000']));
  await new Promise((r) => setTimeout(r, 100));
  victim.child.kill('SIGKILL');
  assert.equal((await victim.exited).signal, 'SIGKILL');
  const results = await Promise.all(others.map((k) => k.next()));
  for (const r of results) {
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.bad, 0);
  }
  for (const k of others) assert.equal((await k.exited).code, 0);
  // The segment stays fully usable from this process.
  for (let i = 0; i < 200; i++) c.put(`after:${i}`, `v${i}`);
  for (let i = 0; i < 200; i++) assert.equal(c.getString(`after:${i}`), `v${i}`);
  for (let i = 0; i < 64; i++) {
    const v = c.get(`shared:${i}`);
    if (v !== null) assert.ok(checkValue(v));
  }
  c.close();
});

test('getOrSet: a waiter takes over from a leader killed with SIGKILL', async () => {
  const name = segName('gos-kill');
  const c = new memshelf.Cache(name, { capacity: '8MiB' });
  const leader = start(['gos-hang', name, 'k']);
  assert.deepEqual(await leader.next(), { leading: true });
  let ran = 0;
  const waiting = c.getOrSet('k', async () => {
    ran++;
    return 'after takeover';
  }, { lease: 60 });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(ran, 0, 'the waiter must wait while the leader lives');
  leader.child.kill('SIGKILL');
  await leader.exited;
  assert.deepEqual(await waiting, Buffer.from('after takeover'));
  assert.equal(ran, 1);
  assert.ok(c.stats().lease_takeovers >= 1);
  c.close();
});

test('worker_threads share one segment', async () => {
  const name = segName('threads');
  const c = new memshelf.Cache(name, { capacity: '8MiB' });
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { Cache } = require(workerData.module);
    const c = new Cache(workerData.name, { create: false });
    for (let i = 0; i < 500; i++) c.put('w' + workerData.id + ':' + i, 'from ' + workerData.id + ' #' + i);
    let seen = 0;
    for (let i = 0; i < 500; i++) if (c.getString('w' + (1 - workerData.id) + ':' + i) !== null) seen++;
    c.incr('threads-done');
    c.close();
    parentPort.postMessage(seen);
  `;
  const run = (id) => new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { id, name, module: require.resolve('memshelf') } });
    w.once('message', resolve);
    w.once('error', reject);
  });
  await Promise.all([run(0), run(1)]);
  assert.equal(c.getString('threads-done'), '2');
  for (const id of [0, 1]) {
    for (let i = 0; i < 500; i++) assert.equal(c.getString(`w${id}:${i}`), `from ${id} #${i}`);
  }
  c.close();
});
