'use strict';
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { memshelf, segName, cleanup } = require('../testlib/util.js');

after(cleanup);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function open(tag) {
  return new memshelf.Cache(segName(tag), { capacity: '8MiB' });
}

test('getOrSet: miss runs the factory, hit does not', async () => {
  const c = open('gos-basic');
  let runs = 0;
  const f = async () => {
    runs++;
    return 'v1';
  };
  assert.deepEqual(await c.getOrSet('k', f), Buffer.from('v1'));
  assert.deepEqual(await c.getOrSet('k', f), Buffer.from('v1'));
  assert.equal(runs, 1);
  // Synchronous factories and every value type work.
  assert.deepEqual(await c.getOrSet('sync', () => Buffer.from([1, 2])), Buffer.from([1, 2]));
  assert.deepEqual(await c.getOrSet('u8', async () => new Uint8Array([3])), Buffer.from([3]));
  assert.deepEqual(await c.getOrSet(Buffer.from('bk'), async () => 'x'), Buffer.from('x'));
  assert.equal(c.getString('bk'), 'x');
  // TTL and tags are applied.
  await c.getOrSet('ttl', async () => 'v', { ttl: 50, tags: ['grp'] });
  assert.ok(c.ttl('ttl') <= 50 && c.ttl('ttl') > 49);
  c.invalidateTag('grp');
  assert.equal(c.get('ttl'), null);
  c.close();
});

test('getOrSet: null results, negativeTtl', async () => {
  const c = open('gos-neg');
  let runs = 0;
  const none = async () => {
    runs++;
    return null;
  };
  assert.equal(await c.getOrSet('a', none), null);
  assert.equal(await c.getOrSet('a', none), null);
  assert.equal(runs, 2); // no negative caching by default
  assert.equal(await c.getOrSet('b', async () => undefined, { negativeTtl: 30 }), null);
  assert.equal(await c.getOrSet('b', none, { negativeTtl: 30 }), null);
  assert.equal(runs, 2); // the absence was cached
  assert.equal(c.get('b'), null);
  c.close();
});

test('getOrSet: grace serves the stale value while one caller refreshes', async () => {
  const c = open('gos-grace');
  await c.getOrSet('k', async () => 'old', { ttl: 0.05, grace: 30 });
  await sleep(100);
  let release;
  const gate = new Promise((r) => { release = r; });
  const refreshing = c.getOrSet('k', async () => {
    await gate;
    return 'new';
  }, { ttl: 30, grace: 30 });
  // While the refresh runs, other callers get the stale value at once.
  assert.deepEqual(await c.getOrSet('k', async () => 'never', { ttl: 30, grace: 30 }), Buffer.from('old'));
  release();
  assert.deepEqual(await refreshing, Buffer.from('new'));
  assert.equal(c.getString('k'), 'new');
  c.close();
});

test('getOrSet: waiters do not block the event loop; a rejected factory hands over', async () => {
  const c = open('gos-wait');
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const leader = c.getOrSet('k', async () => {
    await sleep(200);
    throw new Error('origin down');
  });
  await sleep(10);
  let waiterRuns = 0;
  const waiter = c.getOrSet('k', async () => {
    waiterRuns++;
    return 'from waiter';
  });
  await assert.rejects(leader, /origin down/);
  assert.deepEqual(await waiter, Buffer.from('from waiter'));
  clearInterval(timer);
  assert.equal(waiterRuns, 1);
  assert.ok(ticks >= 10, `event loop ticked only ${ticks} times while waiting`);
  // A factory that throws synchronously is handled the same way.
  await assert.rejects(c.getOrSet('sync-throw', () => { throw new RangeError('sync'); }), RangeError);
  assert.deepEqual(await c.getOrSet('sync-throw', () => 'ok'), Buffer.from('ok'));
  c.close();
});

test('getOrSet: concurrent callers in one process share one factory run', async () => {
  const c = open('gos-many');
  let runs = 0;
  const f = async () => {
    runs++;
    await sleep(100);
    return 'shared';
  };
  const all = await Promise.all(Array.from({ length: 8 }, () => c.getOrSet('k', f)));
  assert.equal(runs, 1);
  for (const v of all) assert.deepEqual(v, Buffer.from('shared'));
  c.close();
});

test('getOrSet: a delete during the fill voids it', async () => {
  const c = open('gos-void');
  const v = await c.getOrSet('k', async () => {
    c.delete('k');
    return 'raced';
  });
  assert.deepEqual(v, Buffer.from('raced'));
  assert.equal(c.get('k'), null);
  c.close();
});

test('getOrSet: argument errors', async () => {
  const c = open('gos-err');
  const code = (cls, want) => (e) => e instanceof cls && e.code === want;
  await assert.rejects(c.getOrSet('k', 'not a function'), code(TypeError, 'ERR_INVALID_ARG_TYPE'));
  await assert.rejects(c.getOrSet(5, async () => 'v'), code(TypeError, 'ERR_INVALID_ARG_TYPE'));
  await assert.rejects(c.getOrSet('k', async () => 'v', { lease: '1' }), code(TypeError, 'ERR_INVALID_ARG_TYPE'));
  await assert.rejects(c.getOrSet('k', async () => 5), code(TypeError, 'ERR_INVALID_ARG_TYPE'));
  await assert.rejects(c.getOrSet('k', async () => 'v', { lease: 0 }), code(RangeError, 'InvalidTtl'));
  await assert.rejects(c.getOrSet('k', async () => 'v', { ttl: -1 }), code(RangeError, 'InvalidTtl'));
  await assert.rejects(c.getOrSet('k', async () => 'v', { grace: NaN }), code(RangeError, 'InvalidTtl'));
  await assert.rejects(c.getOrSet('', async () => 'v'), code(RangeError, 'KeyTooLong'));
  await assert.rejects(c.getOrSet('big', async () => Buffer.alloc(c.maxValueSize + 1)), code(RangeError, 'ValueTooLarge'));
  // After all these, the key is still fillable (no lease left behind).
  assert.deepEqual(await c.getOrSet('k', async () => 'fine'), Buffer.from('fine'));
  assert.deepEqual(await c.getOrSet('big', async () => 'small'), Buffer.from('small'));
  c.close();
});

test('getOrSet with a TTL chosen by the factory (what memshelf/redis uses)', async () => {
  const c = open('gos-timed');
  const timed = Symbol.for('memshelf.getOrSetTimed');
  assert.deepEqual(await c[timed]('k', async () => ['v', 7]), Buffer.from('v'));
  assert.ok(c.ttl('k') > 6 && c.ttl('k') <= 7);
  assert.deepEqual(await c[timed]('k', async () => ['other', 1]), Buffer.from('v')); // a hit
  assert.deepEqual(await c[timed]('d', () => [Buffer.from('x'), undefined], { ttl: 9 }), Buffer.from('x'));
  assert.ok(c.ttl('d') > 8 && c.ttl('d') <= 9); // undefined: the call's ttl
  assert.equal(await c[timed]('n', async () => [null, 5]), null);
  assert.equal(c.ttl('n'), null);
  // A bad result or TTL throws and releases the lease: the next caller leads at once.
  await assert.rejects(c[timed]('w', async () => 'not a pair', { lease: 30 }), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(c[timed]('w', async () => ['v', -1], { lease: 30 }), { code: 'InvalidTtl' });
  const t0 = Date.now();
  assert.deepEqual(await c[timed]('w', async () => ['ok', 3], { lease: 30 }), Buffer.from('ok'));
  assert.ok(Date.now() - t0 < 5000);
  c.close();
});
