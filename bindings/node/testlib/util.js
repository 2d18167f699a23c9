'use strict';
// Shared helpers: the addon under test and unique segment names. The
// package is loaded by name: in the checkout that is the package itself
// (self-reference through "exports"), in scripts/test-node.sh the packed
// tarball installed into a temporary project.
const crypto = require('node:crypto');
const memshelf = require('memshelf');

const made = new Set();

/** A segment name unique to this run (pid + random), unlinked by `cleanup`. */
function segName(tag) {
  const n = `node-test-${tag}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  made.add(n);
  return n;
}

function cleanup() {
  for (const n of made) {
    try {
      memshelf.unlink(n);
    } catch (e) {
      if (e.code !== 'NotFound') throw e;
    }
  }
  made.clear();
}

/** FNV-1a 32 of bytes. */
function fnv1a(bytes) {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A self-checking value: [len u32][fnv1a u32][payload]. */
function makeValue(payload) {
  const v = Buffer.allocUnsafe(8 + payload.length);
  v.writeUInt32LE(payload.length, 0);
  v.writeUInt32LE(fnv1a(payload), 4);
  payload.copy(v, 8);
  return v;
}

/** Whether a value made by makeValue is intact. */
function checkValue(v) {
  if (v.length < 8) return false;
  const len = v.readUInt32LE(0);
  if (len !== v.length - 8) return false;
  return v.readUInt32LE(4) === fnv1a(v.subarray(8));
}

module.exports = { memshelf, segName, cleanup, makeValue, checkValue, fnv1a };
