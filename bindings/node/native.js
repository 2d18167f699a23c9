'use strict';
// Loads the compiled addon (memshelf.node, built by `npm run build` or the
// install script; see README).
const path = require('node:path');

const file = path.join(__dirname, 'memshelf.node');
try {
  module.exports = require(file);
} catch (e) {
  e.message = `memshelf: cannot load the native addon ${file}: ${e.message}\n` +
    'Build it with `npm run build` in bindings/node (needs cargo), or `bash scripts/test-node.sh` from the repository root.';
  throw e;
}
