'use strict';
// Child process for the multi-process tests (forked by test/processes.test.js).
//   child.js rw NAME ID OPS    random puts/gets of self-checking values
//   child.js gos NAME KEY      getOrSet whose factory counts its runs
//   child.js spin NAME         puts forever (to be SIGKILLed)
//   child.js gos-hang NAME KEY leads a getOrSet that never finishes
//   child.js gos-hold NAME KEY leads a getOrSet until the parent sends the
//                              value ({value})
// Reports one JSON message to the parent and exits.
const crypto = require('node:crypto');
const { memshelf, makeValue, checkValue } = require('./util.js');

const [mode, name, ...rest] = process.argv.slice(2);
const cache = new memshelf.Cache(name, { capacity: '8MiB', create: false });

function send(msg) {
  return new Promise((resolve) => process.send(msg, resolve));
}

function waitGo() {
  return new Promise((resolve) => process.once('message', resolve));
}

async function rw(id, ops) {
  let hits = 0;
  let bad = 0;
  const scratch = Buffer.alloc(5000);
  for (let i = 0; i < ops; i++) {
    const key = `shared:${crypto.randomInt(64)}`;
    if (i % 3 === 0) {
      cache.put(key, makeValue(crypto.randomBytes(crypto.randomInt(1000))));
    } else {
      const v = i % 2 ? cache.get(key) : null;
      if (v !== null) {
        hits++;
        if (!checkValue(v)) bad++;
      }
      const n = cache.getInto(key, scratch);
      if (n >= 0 && n <= scratch.length && !checkValue(scratch.subarray(0, n))) bad++;
    }
  }
  cache.incr(`done:${id}`);
  return { hits, bad };
}

async function gos(key) {
  await send({ ready: true });
  await waitGo();
  const v = await cache.getOrSet(key, async () => {
    cache.incr('factory-runs');
    await new Promise((r) => setTimeout(r, 300));
    return `computed by ${process.pid}`;
  }, { lease: 10 });
  return { value: v.toString() };
}

async function gosHang(key) {
  await cache.getOrSet(key, async () => {
    await send({ leading: true });
    // Never settles (killed while leading); the timer keeps it reachable,
    // as pending I/O would.
    return new Promise((resolve) => setTimeout(resolve, 1e9));
  }, { lease: 60 });
}

async function gosHold(key) {
  const v = await cache.getOrSet(key, async () => {
    await send({ leading: true });
    const m = await waitGo();
    return m.value;
  }, { lease: 60 });
  return { value: v.toString() };
}

async function spin() {
  await send({ ready: true });
  for (let i = 0; ; i++) {
    cache.put(`shared:${i % 64}`, makeValue(crypto.randomBytes(i % 4000)));
  }
}

(async () => {
  let result;
  if (mode === 'rw') result = await rw(rest[0], Number(rest[1]));
  else if (mode === 'gos') result = await gos(rest[0]);
  else if (mode === 'spin') result = await spin();
  else if (mode === 'gos-hang') result = await gosHang(rest[0]);
  else if (mode === 'gos-hold') result = await gosHold(rest[0]);
  else throw new Error(`unknown mode ${mode}`);
  await send(result);
  cache.close();
  process.exit(0);
})().catch(async (e) => {
  await send({ error: String(e && e.stack) });
  process.exit(1);
});
