'use strict';
// memshelf/redis: the read-through helper over ioredis, against a real
// redis-server.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { fork } = require('node:child_process');
const { memshelf, segName, cleanup } = require('../testlib/util.js');
const { Redis, startRedis, commandCalls, hooked } = require('../testlib/redis.js');
const { NearCache } = require('memshelf/redis');

const CHILD = path.join(__dirname, '..', 'testlib', 'redis-child.js');

let server;
let r; // a plain client for the test's own commands
const clients = [];

before(async () => {
  server = await startRedis();
  r = client();
});

after(() => {
  for (const c of clients) c.disconnect();
  if (server) server.stop();
  cleanup();
});

function client() {
  const c = new Redis(server.url);
  clients.push(c);
  return c;
}

async function fresh(tag, opts) {
  await r.flushall();
  await r.config('RESETSTAT');
  const cache = new memshelf.Cache(segName(tag), { capacity: '8MiB' });
  return { cache, near: new NearCache(client(), cache, opts) };
}

const gets = () => commandCalls(r, 'get');

test('miss: one Redis GET, stored with the Redis TTL; then memshelf hits', async () => {
  const { cache, near } = await fresh('basic');
  await r.set('k', 'v1', 'PX', 50_000);
  assert.deepEqual(await near.get('k'), Buffer.from('v1'));
  assert.equal(await gets(), 1);
  const redisLeft = (await r.pttl('k')) / 1000; // asked first: the entry is read later
  const left = cache.ttl('k');
  assert.ok(left > 40 && left <= redisLeft + 0.001, `${left} vs ${redisLeft}`);
  assert.deepEqual(await near.get('k'), Buffer.from('v1'));
  assert.deepEqual(await near.get('k'), Buffer.from('v1'));
  assert.equal(await gets(), 1); // hits: Redis not asked again
  assert.ok(cache.stats().hits >= 2);
});

test('a key without TTL gets defaultTtl; a missing key is null and not cached', async () => {
  const { cache, near } = await fresh('nottl', { defaultTtl: 123 });
  await r.set('k', 'v');
  assert.deepEqual(await near.get('k'), Buffer.from('v'));
  assert.ok(cache.ttl('k') > 122 && cache.ttl('k') <= 123);
  assert.equal(await near.get('absent'), null);
  assert.equal(cache.ttl('absent'), null);
  assert.equal(await near.get('absent'), null);
  assert.equal(await gets(), 3); // the absence is not cached
  const neg = new NearCache(client(), cache, { negativeTtl: 5 });
  assert.equal(await neg.get('gone'), null);
  assert.equal(await neg.get('gone'), null);
  assert.equal(await gets(), 4); // opt-in: cached
  await neg.set('gone', 'now');
  assert.deepEqual(await neg.get('gone'), Buffer.from('now'));
});

test('set and del write Redis and drop the local entry', async () => {
  const { cache, near } = await fresh('write');
  await r.set('k', 'v1', 'EX', 100);
  assert.deepEqual(await near.get('k'), Buffer.from('v1'));
  assert.equal(await near.set('k', 'v2', 'EX', 50), 'OK');
  assert.equal(await r.get('k'), 'v2');
  assert.ok((await r.ttl('k')) <= 50);
  assert.equal(cache.get('k'), null); // this host reads its own write
  assert.deepEqual(await near.get('k'), Buffer.from('v2'));
  assert.equal(await near.set('k', 'v3', 'NX'), null);
  assert.equal(await near.del('k', 'other'), 1);
  assert.equal(await r.exists('k'), 0);
  assert.equal(cache.get('k'), null);
  assert.equal(await near.get('k'), null);
  assert.equal(await near.del(), 0);
});

test('a write whose reply is lost still drops the local entry', async () => {
  const { cache } = await fresh('lost');
  const c = client();
  const lossy = new Proxy(c, {
    get(target, prop) {
      if (prop === 'set' || prop === 'del') {
        return async (...args) => {
          await target[prop](...args);
          throw new Error('reply lost');
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const near = new NearCache(lossy, cache);
  await r.set('k', 'v1');
  assert.deepEqual(await near.get('k'), Buffer.from('v1'));
  await assert.rejects(near.set('k', 'v2'), /reply lost/);
  assert.equal(cache.get('k'), null);
  assert.deepEqual(await near.get('k'), Buffer.from('v2'));
  await assert.rejects(near.del('k'), /reply lost/);
  assert.equal(cache.get('k'), null);
  assert.equal(await near.get('k'), null);
});

test('a failed fetch rejects and hands the lease on', async () => {
  const { cache } = await fresh('fail');
  const hook = { fn: async () => { throw new Error('connection lost'); } };
  const near = new NearCache(hooked(client(), hook), cache, { lease: 30 });
  await r.set('k', 'v');
  await assert.rejects(near.get('k'), /connection lost/);
  assert.equal(cache.get('k'), null);
  hook.fn = undefined;
  const t0 = Date.now();
  assert.deepEqual(await near.get('k'), Buffer.from('v')); // released: no 30 s wait
  assert.ok(Date.now() - t0 < 10_000);
});

test('bytes pass through unchanged; getMany uses one round trip for the misses', async () => {
  const { cache, near } = await fresh('bytes', { defaultTtl: 30 });
  const key = Buffer.from([0xff, 0x00, 0x62]);
  const value = Buffer.from(Array.from({ length: 700 }, (_, i) => i % 256));
  await r.set(key, value);
  assert.deepEqual(await near.get(key), value);
  assert.deepEqual(cache.get(key), value);
  await r.set('a', '1', 'EX', 100);
  await r.set('b', '2');
  await r.set('empty', '');
  await r.config('RESETSTAT');
  assert.deepEqual(await near.getMany(['a', key, 'b', 'missing', 'empty']),
    [Buffer.from('1'), value, Buffer.from('2'), null, Buffer.alloc(0)]);
  assert.equal(await commandCalls(r, 'exec'), 1);
  assert.equal(await gets(), 4); // a, b, missing, empty
  assert.ok(cache.ttl('b') > 29 && cache.ttl('b') <= 30);
  assert.deepEqual(await near.getMany(['a', 'b', 'empty']), [Buffer.from('1'), Buffer.from('2'), Buffer.alloc(0)]);
  assert.equal(await gets(), 4);
  assert.deepEqual(await near.getMany([]), []);
});

test('bad input is refused and changes nothing', async () => {
  const { cache, near } = await fresh('bad');
  const long = 'k'.repeat(5000);
  await assert.rejects(near.get(long), { code: 'KeyTooLong' });
  await assert.rejects(near.set(long, 'v'), { code: 'KeyTooLong' });
  await r.set('ok', 'kept');
  await assert.rejects(near.del('ok', long), { code: 'KeyTooLong' });
  await assert.rejects(near.getMany(['ok', long]), { code: 'KeyTooLong' });
  await assert.rejects(near.get(42), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.equal(await r.exists(long), 0);
  assert.equal(await r.get('ok'), 'kept');
  assert.equal(await gets(), 1); // the r.get above: bad keys never reach Redis
  await assert.rejects(new NearCache(client(), cache, { defaultTtl: -1 }).get('ok'), { code: 'InvalidTtl' });
  assert.throws(() => new NearCache(client(), cache, { lease: '10' }), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => new NearCache({}, cache), /ioredis client/);
  assert.throws(() => new NearCache(client(), 'name'), /memshelf Cache/);
  const json = new memshelf.Cache(cache.name, { codec: 'json' });
  assert.throws(() => new NearCache(client(), json), /raw/);
  json.close();
  assert.equal(cache.stats().entries, 0);
});

test('stampede: 5 processes miss at once, one Redis GET', async () => {
  const n = 5;
  const { cache } = await fresh('stampede');
  await r.set('hot', 'value', 'EX', 100);
  await r.config('RESETSTAT');
  const kids = [];
  for (let i = 0; i < n; i++) {
    const child = fork(CHILD, ['stampede', cache.name, server.url, String(n)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const msgs = [];
    const waiters = [];
    child.on('message', (m) => {
      const w = waiters.shift();
      if (w) w(m);
      else msgs.push(m);
    });
    const next = () => (msgs.length ? Promise.resolve(msgs.shift()) : new Promise((res) => waiters.push(res)));
    kids.push({ child, next });
  }
  for (const k of kids) assert.deepEqual(await k.next(), { ready: true });
  for (const k of kids) k.child.send('go');
  const results = await Promise.all(kids.map((k) => k.next()));
  assert.deepEqual(results, Array(n).fill({ value: 'value' }));
  assert.equal(await gets(), 1);
  assert.ok(cache.stats().get_or_set_waits >= n - 1); // they really all missed at once
  assert.deepEqual(cache.get('hot'), Buffer.from('value'));
});

test('read-through race: a write during the fill never leaves the old value cached', async () => {
  // Each round: the reader's fill has Redis's answer (v1) and is held
  // before its store; meanwhile a writer sets v2 in Redis and the
  // invalidation lands (the agent's delete, simulated by cache.delete;
  // every third round the writer's own near.set). v1 goes back to that
  // reader but must never be served from memshelf.
  const { cache } = await fresh('race');
  const hook = {};
  const near = new NearCache(hooked(client(), hook), cache);
  const writer = new NearCache(client(), cache);
  const rounds = 2000;
  for (let i = 0; i < rounds; i++) {
    const key = `race:${i % 7}`;
    const v1 = `v1:${i}`;
    const v2 = `v2:${i}`;
    await r.set(key, v1, 'EX', 600);
    cache.delete(key);
    let fetched;
    const isFetched = new Promise((res) => { fetched = res; });
    let written;
    const isWritten = new Promise((res) => { written = res; });
    hook.fn = async () => {
      fetched();
      await isWritten;
    };
    const reading = near.get(key);
    await isFetched;
    if (i % 3 === 0) {
      await writer.set(key, v2, 'EX', 600);
    } else {
      await r.set(key, v2, 'EX', 600);
      cache.delete(key); // the agent applying the tracking invalidation
    }
    written();
    assert.deepEqual(await reading, Buffer.from(v1)); // the fetched value goes to its caller
    hook.fn = undefined;
    assert.notDeepEqual(cache.get(key), Buffer.from(v1), `round ${i}: the stale value was stored`);
    assert.deepEqual(await near.get(key), Buffer.from(v2), `round ${i}`);
  }
});
