'use strict';
// A segment written by the Rust engine (examples/interop.rs) is read here,
// and one written here is checked by the Rust engine.
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { memshelf, segName, cleanup } = require('../testlib/util.js');

after(cleanup);

const root = path.resolve(__dirname, '..', '..', '..');

function rust(mode, name) {
  // scripts/test-node.sh builds the example and names it in
  // MEMSHELF_INTEROP_BIN (the installed-package run has no cargo); from a
  // checkout without it, cargo runs it.
  const bin = process.env.MEMSHELF_INTEROP_BIN;
  const [cmd, args] = bin
    ? [bin, [mode, name]]
    : ['cargo', ['run', '--quiet', '-p', 'memshelf-node', '--example', 'interop', '--', mode, name]];
  execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
}

test('Node reads what Rust wrote, Rust reads what Node wrote', () => {
  const name = segName('interop');
  rust('write', name);
  const c = new memshelf.Cache(name, { create: false });
  assert.equal(c.getString('from-rust:text'), 'héllo from Rust');
  assert.deepEqual(c.get(Buffer.from([...Buffer.from('from-rust:'), 0, 0xff, ...Buffer.from('bin')])), Buffer.from([0, 1, 2, 255]));
  assert.deepEqual(c.get('from-rust:empty'), Buffer.alloc(0));
  assert.deepEqual(c.get('from-rust:big'), Buffer.alloc(200_000, 'r'));
  assert.equal(c.incr('from-rust:counter'), 42);

  c.put('from-node:text', '日本語 from Node');
  c.put(Buffer.from([...Buffer.from('from-node:'), 1, 2, ...Buffer.from('bin')]), new Uint8Array([9, 8, 7, 0]));
  c.incr('from-node:counter', 7);
  c.put('from-node:big', Buffer.alloc(300_000, 'n'));
  c.close();
  rust('check', name);
});
