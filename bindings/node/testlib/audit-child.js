'use strict';
// Child process of test/nearcache-agent.test.js (the stale-read audit):
//   audit-child.js reader URL SEGMENT ACKS SECONDS
//   audit-child.js writer URL ACKS SECONDS ID
// A writer owns keys ID, ID+WRITERS, ...: it SETs rising versions and after
// each acknowledged SET records "version:ms" in the side segment ACKS. A
// reader reads through memshelf/redis and counts a value older than one
// acknowledged more than BOUND_MS before its read began as stale.
const { memshelf } = require('./util.js');
const { NearCache } = require('memshelf/redis');
const { Redis } = require('./redis.js');
const { KEYS, WRITERS, BOUND_MS, key } = require('./audit.js');

const [role, url, ...rest] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function writer(acksName, seconds, me) {
  const r = new Redis(url);
  const acks = new memshelf.Cache(acksName, { create: false });
  const stopAt = Date.now() + seconds * 1000; // from its own start
  const version = new Map();
  let writes = 0;
  while (Date.now() < stopAt) {
    const i = me + WRITERS * Math.floor(Math.random() * (KEYS / WRITERS));
    const v = (version.get(i) || 0) + 1;
    version.set(i, v);
    await r.set(key(i), `v${v}`);
    acks.put(`ack:${i}`, `${v}:${Date.now()}`);
    writes++;
    await sleep(2);
  }
  r.disconnect();
  return { role: 'writer', writes };
}

async function reader(segment, acksName, seconds) {
  const client = new Redis(url);
  const near = new NearCache(client, new memshelf.Cache(segment, { create: false }));
  const acks = new memshelf.Cache(acksName, { create: false });
  // Zipf-like weights: a few hot keys.
  const cdf = [];
  let sum = 0;
  for (let i = 0; i < KEYS; i++) cdf.push((sum += 1 / (i + 1)));
  const pick = () => {
    const x = Math.random() * sum;
    let lo = 0;
    while (cdf[lo] < x) lo++;
    return lo;
  };
  const stopAt = Date.now() + seconds * 1000;
  let reads = 0;
  let stale = 0;
  let newer = 0;
  let worst = null;
  while (Date.now() < stopAt) {
    const i = pick();
    const began = Date.now();
    const got = await near.get(key(i));
    const ack = acks.getString(`ack:${i}`);
    reads++;
    if (got !== null && ack !== null) {
      const have = Number(got.toString().slice(1));
      const [acked, at] = ack.split(':').map(Number);
      if (have >= acked) {
        if (have > 1) newer++;
      } else if (began - at > BOUND_MS) {
        stale++;
        worst = Math.max(worst || 0, began - at);
      }
    }
    if (reads % 16 === 0) await sleep(0); // let ioredis and timers run
  }
  client.disconnect();
  return { role: 'reader', reads, stale, worst, newer };
}

(async () => {
  const res =
    role === 'writer'
      ? await writer(rest[0], Number(rest[1]), Number(rest[2]))
      : await reader(rest[0], rest[1], Number(rest[2]));
  process.send(res, () => process.exit(0));
})().catch((e) => {
  process.send({ error: String(e && e.stack) }, () => process.exit(1));
});
