'use strict';
// Builds the native addon with cargo and copies it to memshelf.node.
//   node build.js              debug build (what the tests use)
//   node build.js --release    optimised build (benchmarks, npm pack)
//   node build.js --if-missing do nothing when memshelf.node exists (the
//                              npm install script: a packed tarball ships
//                              memshelf.node, a checkout builds it)
// Respects CARGO_TARGET_DIR; needs cargo and the memshelf workspace.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const here = __dirname;
const dest = path.join(here, 'memshelf.node');
const args = new Set(process.argv.slice(2));

if (args.has('--if-missing') && fs.existsSync(dest)) process.exit(0);

const root = path.resolve(here, '..', '..');
const release = args.has('--release');
const cargoArgs = ['build', '-p', 'memshelf-node', '--message-format=json-render-diagnostics'];
if (release) cargoArgs.push('--release');
const out = execFileSync('cargo', cargoArgs, {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  maxBuffer: 256 << 20,
}).toString();

let lib;
for (const line of out.split('\n')) {
  if (!line.startsWith('{')) continue;
  const m = JSON.parse(line);
  if (m.reason === 'compiler-artifact' && m.target && m.target.name === 'memshelf_node' &&
      m.target.kind.includes('cdylib')) {
    lib = m.filenames.find((f) => /\.(so|dylib|dll)$/.test(f));
  }
}
if (!lib) throw new Error('memshelf: cargo did not report the memshelf_node library');
// Copy to a temporary name and rename, so a process that has the old addon
// loaded keeps a consistent file.
const tmp = `${dest}.${process.pid}.tmp`;
fs.copyFileSync(lib, tmp);
fs.renameSync(tmp, dest);
console.error(`memshelf: built ${path.relative(process.cwd(), dest)} (${release ? 'release' : 'debug'})`);
