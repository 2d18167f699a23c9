// memshelf's Node addon against Map, lru-cache and lmdb-js, in one run.
//
//   npm ci --prefix benches/node               # once: lmdb, lru-cache (pinned)
//   (cd bindings/node && npm run build)        # the release addon
//   node --expose-gc benches/node_bench.mjs [--keys N] [--ops M] [--reps R] [--duration S]
//
// Figures: GET p50 (ns/op over batches of B ops; memshelf as Buffer, string
// and getInto; getMany: ns per key of getMany calls of 100 keys), SET mean
// ns/op, and GET ops/s summed over 2 processes
// (child_process.fork, each with its own handle, running for --duration s).
// All GETs are hits on N keys of 16-24 B with 100 B values, in a random
// order. Compare figures within one run only (shared 2-core machine).
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const requireBench = createRequire(path.join(here, 'node', 'package.json'));
const memshelfPath = process.env.MEMSHELF_NODE || path.join(here, '..', 'bindings', 'node');
const require = createRequire(import.meta.url);

const argv = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const N = flag('--keys', 100_000);
const M = flag('--ops', 200_000);
const REPS = flag('--reps', 5);
const DURATION = flag('--duration', 1.5);
const PROCS = 2;

function keyOf(i) {
  return `user:${String(i).padStart(6, '0')}:${crypto.createHash('sha1').update(String(i)).digest('hex').slice(0, 4 + (i % 9))}`;
}
const KEYS = Array.from({ length: N }, (_, i) => keyOf(i));
const VALUE = crypto.createHash('sha512').update('v').digest().subarray(0, 50);
const VAL100 = Buffer.concat([VALUE, VALUE]);
// getString is measured on text (100 ASCII bytes): decoding random bytes
// as UTF-8 measures V8's replacement-character path, not memshelf.
const TEXT100 = Buffer.from(VAL100.toString('hex').slice(0, 100));
let sink = 0;
const ORDER = Uint32Array.from({ length: 65536 }, (_, i) => crypto.createHash('md5').update(String(i)).digest().readUInt32LE(0) % N);

// ---------------------------------------------------------------- targets
function openTarget(kind, spec) {
  switch (kind) {
    case 'map': {
      const m = new Map();
      return { get: (k) => m.get(k), set: (k, v) => m.set(k, v), close() {} };
    }
    case 'lru-cache': {
      const { LRUCache } = requireBench('lru-cache');
      const c = new LRUCache({ max: N * 2 });
      return { get: (k) => c.get(k), set: (k, v) => c.set(k, v), close() {} };
    }
    case 'lmdb': {
      const { open } = requireBench('lmdb');
      const db = open({ path: spec.path, noSync: true, noMetaSync: true, encoding: 'binary', mapSize: 1 << 30 });
      return { get: (k) => db.get(k), set: (k, v) => db.putSync(k, v), close: () => db.close() };
    }
    default: {
      const { Cache } = require(memshelfPath);
      // The engine's S3-FIFO keeps never-read new entries in its small FIFO
      // (a tenth of the segment) even while the main FIFO is empty, so a
      // one-pass load of N keys needs about 10 x N x 190 B of capacity to
      // keep them all (reported to the core; MEMSHELF_CAPACITY overrides).
      const c = new Cache(spec.name, { capacity: process.env.MEMSHELF_CAPACITY || Math.max(64 << 20, 12 * N * 200) });
      const buf = Buffer.allocUnsafe(4096);
      const get = kind === 'memshelf-string' ? (k) => c.getString(k)
        : kind === 'memshelf-getInto' ? (k) => c.getInto(k, buf)
          : (k) => c.get(k);
      return { get, getMany: (ks) => c.getMany(ks), set: (k, v) => c.put(k, v), close: () => c.close() };
    }
  }
}

function specFor(kind, tmp) {
  if (kind === 'lmdb') return { path: path.join(tmp, 'lmdb') };
  return { name: `node-bench-${process.pid}` };
}

// --------------------------------------------------------------- measuring
function now() {
  return process.hrtime.bigint();
}

// The smallest power of two B whose batch takes >= 20 us (after warm-up),
// so reading the clock is < 1 % of what is measured.
function batchSize(fn) {
  let b = 1;
  for (;;) {
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = now();
      for (let i = 0; i < b; i++) sink += fn(KEYS[ORDER[(i + r * b) & 65535]]) == null ? 1 : 0;
      best = Math.min(best, Number(now() - t0));
    }
    if (best >= 20_000 || b >= 1 << 16) return b;
    b *= 2;
  }
}

function latency(fn) {
  for (let i = 0; i < 50_000; i++) fn(KEYS[ORDER[i & 65535]]);
  const B = batchSize(fn);
  const p50s = [];
  const means = [];
  for (let r = 0; r < REPS; r++) {
    globalThis.gc?.();
    const per = [];
    let j = r * 7919;
    const t0 = now();
    for (let done = 0; done < M; done += B) {
      const b0 = now();
      for (let i = 0; i < B; i++) sink += fn(KEYS[ORDER[j++ & 65535]]) == null ? 1 : 0;
      per.push(Number(now() - b0) / B);
    }
    means.push(Number(now() - t0) / (Math.ceil(M / B) * B));
    per.sort((a, b) => a - b);
    p50s.push(per[per.length >> 1]);
  }
  const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  return { p50: med(p50s), mean: med(means), batch: B };
}

// getMany of MANY keys per call: ns per key (p50 over calls, median of reps).
const MANY = 100;
const MANY_SETS = Array.from({ length: 655 }, (_, j) => Array.from({ length: MANY }, (_, i) => KEYS[ORDER[(j * MANY + i) & 65535]]));
function manyLatency(getMany) {
  for (let i = 0; i < 500; i++) getMany(MANY_SETS[i % MANY_SETS.length]);
  const p50s = [];
  const means = [];
  const calls = Math.max(1, Math.ceil(M / MANY));
  for (let r = 0; r < REPS; r++) {
    globalThis.gc?.();
    const per = [];
    const t0 = now();
    for (let j = 0; j < calls; j++) {
      const b0 = now();
      sink += getMany(MANY_SETS[(j + r * 101) % MANY_SETS.length]).length;
      per.push(Number(now() - b0) / MANY);
    }
    means.push(Number(now() - t0) / (calls * MANY));
    per.sort((a, b) => a - b);
    p50s.push(per[per.length >> 1]);
  }
  const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  return { p50: med(p50s), mean: med(means), batch: MANY };
}

// Throughput child: open, warm up, then GET until the deadline.
async function child() {
  const { kind, spec, startAt, duration } = JSON.parse(process.env.NODE_BENCH_CHILD);
  const t = openTarget(kind, spec);
  for (let i = 0; i < 20_000; i++) t.get(KEYS[ORDER[i & 65535]]);
  while (Date.now() < startAt) await new Promise((r) => setTimeout(r, 1));
  const end = process.hrtime.bigint() + BigInt(Math.round(duration * 1e9));
  let ops = 0;
  let j = process.pid;
  const t0 = process.hrtime.bigint();
  while (process.hrtime.bigint() < end) {
    for (let i = 0; i < 1000; i++) {
      if (t.get(KEYS[ORDER[j++ & 65535]]) == null) throw new Error('miss in throughput phase');
    }
    ops += 1000;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  t.close();
  process.send({ opsPerSec: ops / secs }, () => process.exit(0));
}

async function throughput(kind, spec) {
  const startAt = Date.now() + 1500;
  const kids = Array.from({ length: PROCS }, () => fork(fileURLToPath(import.meta.url), argv, {
    env: { ...process.env, NODE_BENCH_CHILD: JSON.stringify({ kind, spec, startAt, duration: DURATION }) },
  }));
  const results = await Promise.all(kids.map((k) => new Promise((resolve, reject) => {
    k.once('message', (m) => resolve(m.opsPerSec));
    k.once('exit', (code) => code && reject(new Error(`child exited ${code}`)));
  })));
  return results.reduce((a, b) => a + b, 0);
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memshelf-node-bench-'));
  const rows = [];
  const kinds = (process.env.NODE_BENCH_TARGETS || 'map,lru-cache,lmdb,memshelf,memshelf-string,memshelf-getInto,memshelf-getMany').split(',');
  let memshelfSpec;
  try {
    for (const kind of kinds) {
      const shared = kind.startsWith('memshelf');
      const spec = kind.startsWith('memshelf') ? (memshelfSpec ??= specFor(kind, tmp)) : specFor(kind, tmp);
      const t = openTarget(kind, spec);
      const value = kind === 'memshelf-string' ? TEXT100 : VAL100;
      for (const k of KEYS) t.set(k, value);
      for (let i = 0; i < 2000; i++) {
        const k = KEYS[ORDER[i]];
        const v = t.get(k);
        const ok = kind === 'memshelf-getInto' ? v === 100 : kind === 'memshelf-string'
          ? v === TEXT100.toString() : Buffer.compare(Buffer.from(v), VAL100) === 0;
        if (!ok) throw new Error(`${kind}: sampled key ${k} missing or wrong after load`);
      }
      const get = kind === 'memshelf-getMany' ? manyLatency(t.getMany) : latency(t.get);
      const set = kind === 'memshelf' || !shared ? latency((k) => t.set(k, VAL100)) : null;
      t.close();
      const tp = (kind === 'lmdb' || kind === 'memshelf') && PROCS > 0 ? await throughput(kind, spec) : null;
      rows.push({ kind, get, set, tp });
      console.error(`${kind}: done`);
    }
  } finally {
    if (memshelfSpec) require(memshelfPath).unlink(memshelfSpec.name);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const lmdb = rows.find((r) => r.kind === 'lmdb') ?? rows[0];
  const fmt = (n) => (n == null ? 'n/a' : Math.round(n).toLocaleString('en-US'));
  if (sink < 0) console.log(sink);
  console.log(`\nnode ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; N=${N} keys, 100 B values, M=${M} ops x ${REPS} reps (median)\n`);
  console.log('| target | GET p50 ns (batch) | GET mean ns | GET vs lmdb-js | SET ns/op | GET ops/s x2 procs |');
  console.log('|---|--:|--:|--:|--:|--:|');
  for (const r of rows) {
    console.log(`| ${r.kind} | ${fmt(r.get.p50)} (b${r.get.batch}) | ${fmt(r.get.mean)} | ${(lmdb.get.p50 / r.get.p50).toFixed(2)}x | ${fmt(r.set?.mean)} | ${fmt(r.tp)} |`);
  }
}

if (process.env.NODE_BENCH_CHILD) await child();
else await main();
