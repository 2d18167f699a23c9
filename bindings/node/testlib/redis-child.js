'use strict';
// Child process of test/redis.test.js:
//   redis-child.js stampede NAME URL N
// reads key "hot" through memshelf/redis; if it leads the fill, it holds the
// fill (after Redis's answer) until the N-1 other children wait for it.
const { memshelf } = require('./util.js');
const { NearCache } = require('memshelf/redis');
const { Redis, hooked } = require('./redis.js');

const [mode, name, url, n] = process.argv.slice(2);

(async () => {
  if (mode !== 'stampede') throw new Error(`unknown mode ${mode}`);
  const cache = new memshelf.Cache(name, { create: false });
  const client = new Redis(url);
  const hook = {
    async fn() {
      const deadline = Date.now() + 30_000;
      while (cache.stats().get_or_set_waits < Number(n) - 1 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 2));
      }
    },
  };
  const near = new NearCache(hooked(client, hook), cache);
  await new Promise((r) => process.send({ ready: true }, r));
  await new Promise((r) => process.once('message', r));
  const v = await near.get('hot');
  await new Promise((r) => process.send({ value: v && v.toString() }, r));
  client.disconnect();
  cache.close();
  process.exit(0);
})().catch((e) => {
  process.send({ error: String(e && e.stack) }, () => process.exit(1));
});
