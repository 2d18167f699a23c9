// Builds the release addon and packs the two npm packages a user installs:
//   node bindings/node/pack.mjs OUTDIR
// -> OUTDIR/memshelf-VERSION.tgz (JavaScript, types, the platform loader)
//    OUTDIR/memshelf-linux-x64-gnu-VERSION.tgz (the stripped release addon,
//    with os/cpu/libc fields)
// Then, in your project: npm install OUTDIR/memshelf-*.tgz
//
// Nothing is written into the checkout but cargo's target/ directory: the
// addon is built into a temporary directory and both packages are staged
// there (the main package.json gains `optionalDependencies` on the
// platform packages of npm/*, and loses `devDependencies` and `scripts`). Uses the pinned @napi-rs/cli from bindings/node/node_modules
// when present (`npm ci` there), else runs that same version through npx.
// Needs cargo. Only x86_64-unknown-linux-gnu can be built here; the other
// targets in package.json "napi.targets" are declared for CI machines of
// those platforms (same command).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] ?? '');
if (!process.argv[2]) {
  console.error('usage: node bindings/node/pack.mjs OUTDIR');
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });
const pkg = JSON.parse(fs.readFileSync(path.join(here, 'package.json'), 'utf8'));
const platform = 'linux-x64-gnu';
const addon = `${pkg.napi.binaryName}.${platform}.node`;

const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'memshelf-pack-'));
try {
  const local = path.join(here, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
  const napi = fs.existsSync(local)
    ? [process.execPath, [local]]
    : ['npx', ['--yes', `@napi-rs/cli@${pkg.devDependencies['@napi-rs/cli']}`]];
  const build = ['build', '--platform', '--release', '--strip', '--target', 'x86_64-unknown-linux-gnu',
    '--cwd', here, '--output-dir', stage, '--js', 'loader.js', '--dts', 'native.d.ts'];
  execFileSync(napi[0], [...napi[1], ...build], { stdio: 'inherit' });

  // The committed loader and native typings must be what this CLI
  // generates from the Rust source (else `npm run build` was not rerun).
  for (const [mine, generated] of [['native.js', 'loader.js'], ['native.d.ts', 'native.d.ts']]) {
    if (fs.readFileSync(path.join(here, mine), 'utf8') !== fs.readFileSync(path.join(stage, generated), 'utf8')) {
      throw new Error(`bindings/node/${mine} is stale: run \`npm run build\` in bindings/node and commit it`);
    }
  }

  // The platform package: its package.json and README from npm/, the addon.
  const platDir = path.join(stage, platform);
  fs.mkdirSync(platDir);
  for (const f of ['package.json', 'README.md']) fs.copyFileSync(path.join(here, 'npm', platform, f), path.join(platDir, f));
  fs.copyFileSync(path.join(stage, addon), path.join(platDir, addon));
  // The main package, staged with its platform packages as
  // optionalDependencies (what `napi prepublish` adds when publishing;
  // kept out of the checkout's package.json so `npm ci` there never looks
  // up packages that are not published).
  const mainDir = path.join(stage, 'main');
  fs.mkdirSync(mainDir);
  for (const f of [...pkg.files, 'README.md']) fs.copyFileSync(path.join(here, f), path.join(mainDir, f));
  const optional = {};
  for (const d of fs.readdirSync(path.join(here, 'npm')).sort()) {
    const p = JSON.parse(fs.readFileSync(path.join(here, 'npm', d, 'package.json'), 'utf8'));
    optional[p.name] = p.version;
  }
  const { devDependencies, scripts, ...published } = pkg;
  fs.writeFileSync(path.join(mainDir, 'package.json'), `${JSON.stringify({ ...published, optionalDependencies: optional }, null, 2)}\n`);
  const pack = (dir) => execFileSync('npm', ['pack', '--silent', '--pack-destination', out], { cwd: dir, encoding: 'utf8' }).trim();
  const files = [pack(platDir), pack(mainDir)];
  for (const f of files) console.log(path.join(out, f));
} finally {
  fs.rmSync(stage, { recursive: true, force: true });
}
