// @keyv/test-suite (keyv 5.x) against memshelf/keyv, plus what the suite
// does not cover: several stores over one segment, another process's
// store, TTLs in milliseconds, namespaced clear, the iterator.
//   npx vitest run --root test-keyv      (scripts/test-node.sh runs it)
import * as test from 'vitest';
import keyvTestSuite from '@keyv/test-suite';
import Keyv from 'keyv';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import KeyvMemshelf, { KeyvMemshelf as Named } from 'memshelf/keyv';
import { Cache, unlink } from 'memshelf';

const require = createRequire(import.meta.url);
const name = `node-keyv-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
const shared = new Cache(name, { capacity: '8MiB' });
test.afterAll(() => {
  shared.close();
  unlink(name);
});

// Every store object is a new one over the same segment, as the SPEC asks.
const store = () => new KeyvMemshelf(shared);
keyvTestSuite(test, Keyv, store);

test.describe('memshelf/keyv beyond the suite', () => {
  test.it('default and named exports are the same class', (t) => {
    t.expect(Named).toBe(KeyvMemshelf);
    t.expect(require('memshelf/keyv').KeyvMemshelf).toBe(KeyvMemshelf);
  });

  test.it('the store gets strings from Keyv and returns strings', async (t) => {
    const s = store();
    const keyv = new Keyv({ store: s, namespace: 'strings' });
    await keyv.set('a', { deep: [1, 2] });
    const raw = await s.get('strings:a');
    t.expect(typeof raw).toBe('string');
    t.expect(JSON.parse(raw).value).toEqual({ deep: [1, 2] });
    t.expect(await keyv.get('a')).toEqual({ deep: [1, 2] });
  });

  test.it("set's TTL is milliseconds and becomes the entry's TTL", async (t) => {
    const keyv = new Keyv({ store: store(), namespace: 'ttl' });
    await keyv.set('short', 'v', 1500);
    const left = shared.ttl('ttl:short');
    t.expect(left).toBeGreaterThan(1);
    t.expect(left).toBeLessThanOrEqual(1.5);
    await keyv.set('forever', 'v');
    t.expect(shared.ttl('ttl:forever')).toBe(Infinity);
    await keyv.set('gone', 'v', 30);
    await new Promise((r) => setTimeout(r, 80));
    t.expect(shared.has('ttl:gone')).toBe(false); // expired in the segment itself
    t.expect(await keyv.get('gone')).toBeUndefined();
  });

  test.it('two stores over one segment see each other; clear() keeps other namespaces', async (t) => {
    const a = new Keyv({ store: store(), namespace: 'ns-a' });
    const b = new Keyv({ store: new KeyvMemshelf(name), namespace: 'ns-a' });
    const other = new Keyv({ store: store(), namespace: 'ns-b' });
    await a.set('k', 'from a');
    await other.set('k', 'from b');
    t.expect(await b.get('k')).toBe('from a');
    await b.clear();
    t.expect(await a.get('k')).toBeUndefined();
    t.expect(await other.get('k')).toBe('from b');
    await b.disconnect();
  });

  test.it('a store in another process sees the same entries', async (t) => {
    const keyv = new Keyv({ store: store(), namespace: 'proc' });
    await keyv.set('k', 'hello');
    const script = `
      const { default: Keyv } = await import('keyv');
      const { KeyvMemshelf } = await import('memshelf/keyv');
      const s = new KeyvMemshelf(${JSON.stringify(name)}, { create: false });
      const k = new Keyv({ store: s, namespace: 'proc' });
      process.stdout.write(String(await k.get('k')));
      await k.set('back', 'from child');
      await s.disconnect();`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    t.expect(out).toBe('hello');
    t.expect(await keyv.get('back')).toBe('from child');
  });

  test.it('getMany / setMany / deleteMany / hasMany go through the store', async (t) => {
    const keyv = new Keyv({ store: store(), namespace: 'many' });
    t.expect(await keyv.setMany([{ key: 'x', value: 1 }, { key: 'y', value: 2, ttl: 5000 }])).toEqual([true, true]);
    t.expect(await keyv.get(['x', 'nope', 'y'])).toEqual([1, undefined, 2]);
    t.expect(await keyv.has(['x', 'nope'])).toEqual([true, false]);
    t.expect(await keyv.delete(['x', 'nope'])).toBe(true);
    t.expect(await keyv.delete(['x', 'nope'])).toBe(false);
  });

  test.it('iterator(namespace) yields only that namespace', async (t) => {
    const s = store();
    const keyv = new Keyv({ store: s, namespace: 'it' });
    await keyv.set('1', 'one');
    await keyv.set('2', 'two');
    await new Keyv({ store: store(), namespace: 'it2' }).set('3', 'three');
    const seen = {};
    for await (const [k, v] of s.iterator('it')) seen[k] = JSON.parse(v).value;
    t.expect(seen).toEqual({ 'it:1': 'one', 'it:2': 'two' });
  });

  test.it('refuses a json-codec cache and non-cache arguments', (t) => {
    const j = new Cache(name, { codec: 'json' });
    t.expect(() => new KeyvMemshelf(j)).toThrow(TypeError);
    t.expect(() => new KeyvMemshelf(42)).toThrow(TypeError);
    j.close();
  });
});
