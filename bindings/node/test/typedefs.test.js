'use strict';
// index.d.ts is hand-written: check that it declares exactly what the
// module exports and exactly the members of Cache.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const memshelf = require('..');

const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8');

function declaredExports() {
  const names = new Set();
  for (const m of dts.matchAll(/^export (?:declare )?(?:class|function|const) (\w+)/gm)) names.add(m[1]);
  return [...names].sort();
}

function declaredCacheMembers() {
  const body = dts.slice(dts.indexOf('export class Cache {'));
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
  const instance = ['name', 'capacity', 'maxValueSize'];
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
