'use strict';
// index.d.ts and keyv.d.ts are hand-written: check them member by member
// against the loaded module (exports, Cache members and instance
// properties, Stats fields, option names, the Keyv store's members).
// scripts/test-node.sh also compiles a user file with `tsc --strict`.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const memshelf = require('memshelf');

const pkgDir = path.dirname(require.resolve('memshelf/package.json'));
const dts = fs.readFileSync(path.join(pkgDir, 'index.d.ts'), 'utf8');
const keyvDts = fs.readFileSync(path.join(pkgDir, 'keyv.d.ts'), 'utf8');

function declaredExports() {
  const names = new Set();
  for (const m of dts.matchAll(/^export (?:declare )?(?:class|function|const) (\w+)/gm)) names.add(m[1]);
  return [...names].sort();
}

function declaredCacheMembers() {
  const body = dts.slice(dts.indexOf('export class Cache<'));
  const end = body.indexOf('\n}\n');
  const names = new Set();
  for (const m of body.slice(0, end).matchAll(/^ {2}(?:readonly )?(\w+)[(?:<]/gm)) {
    if (m[1] !== 'constructor') names.add(m[1]);
  }
  return [...names].sort();
}

test('index.d.ts declares every export and nothing else', () => {
  assert.deepEqual(declaredExports(), Object.keys(memshelf).sort());
});

test('index.d.ts declares every Cache member and nothing else', () => {
  const proto = Object.getOwnPropertyNames(memshelf.Cache.prototype).filter((n) => n !== 'constructor');
  const instance = ['name', 'capacity', 'maxValueSize', 'codec'];
  assert.deepEqual(declaredCacheMembers(), [...proto, ...instance].sort());
  // The instance properties really exist on an instance.
  const { segName, cleanup } = require('../testlib/util.js');
  const c = new memshelf.Cache(segName('dts'), { capacity: '1MiB' });
  for (const p of instance) assert.ok(Object.hasOwn(c, p), p);
  c.close();
  cleanup();
});

test('every declared function is a function and every constant has its type', () => {
  for (const m of dts.matchAll(/^export function (\w+)/gm)) assert.equal(typeof memshelf[m[1]], 'function', m[1]);
  for (const m of dts.matchAll(/^export const (\w+): (\w+)/gm)) assert.equal(typeof memshelf[m[1]], m[2], m[1]);
  assert.equal(typeof memshelf.Cache, 'function');
});

/** Member names of `interface name { ... }` (or a class body) in `src`. */
function members(src, opener) {
  const start = src.indexOf(opener);
  assert.ok(start >= 0, opener);
  const body = src.slice(start, src.indexOf('\n}\n', start));
  const names = new Set();
  for (const m of body.matchAll(/^ {2}(?:readonly )?(\w+)[?(:<]/gm)) {
    if (m[1] !== 'constructor') names.add(m[1]);
  }
  return [...names].sort();
}

test('the Stats interface has exactly the fields stats() returns', () => {
  const { segName, cleanup } = require('../testlib/util.js');
  const c = new memshelf.Cache(segName('dts-stats'), { capacity: '1MiB' });
  const s = c.stats();
  assert.deepEqual(members(dts, 'export interface Stats {'), Object.keys(s).sort());
  for (const v of Object.values(s)) assert.equal(typeof v, 'number');
  c.close();
  cleanup();
});

test('OpenOptions declares exactly the options the constructor reads', () => {
  // Every declared option is read (an unknown type is refused) and no other.
  const declared = members(dts, 'export interface OpenOptions<');
  const read = [];
  const probe = new Proxy({}, { get: (_, k) => { if (typeof k === 'string') read.push(k); return undefined; } });
  const { segName, cleanup } = require('../testlib/util.js');
  new memshelf.Cache(segName('dts-opts'), probe).close();
  cleanup();
  assert.deepEqual([...new Set(read)].sort(), declared);
});

test('keyv.d.ts declares every member of the Keyv store and nothing else', () => {
  const { KeyvMemshelf } = require('memshelf/keyv');
  const proto = Object.getOwnPropertyNames(KeyvMemshelf.prototype).filter((n) => n !== 'constructor');
  const instance = ['namespace', 'opts'];
  const { segName, cleanup } = require('../testlib/util.js');
  const s = new KeyvMemshelf(segName('dts-keyv'), { capacity: '1MiB' });
  for (const p of instance) assert.ok(Object.hasOwn(s, p), p);
  s.disconnect();
  cleanup();
  // `on` is EventEmitter's, declared for Keyv.
  assert.deepEqual(members(keyvDts, 'export class KeyvMemshelf {'), [...proto, ...instance, 'on'].sort());
});

test('redis.d.ts declares every member of NearCache and nothing else', () => {
  const { NearCache } = require('memshelf/redis');
  const redisDts = fs.readFileSync(path.join(pkgDir, 'redis.d.ts'), 'utf8');
  const proto = Object.getOwnPropertyNames(NearCache.prototype).filter((n) => n !== 'constructor');
  assert.deepEqual(members(redisDts, 'export class NearCache<'), proto.sort());
  const declaredOptions = members(redisDts, 'export interface NearCacheOptions {');
  assert.deepEqual(declaredOptions, ['defaultTtl', 'lease', 'negativeTtl']);
});
