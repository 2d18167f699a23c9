'use strict';
// Near-cache mode end to end from Node (SPEC 6b, 9): memshelf/redis
// readers in front of a real redis-server, the real memshelf-agent in
// `tracking` mode deleting whatever any client writes, and a stale-read
// audit (the Node twin of bindings/python/tests/test_nearcache_agent.py):
// 4 reader and 2 writer processes on versioned values; a reader that gets
// a version older than one acknowledged more than BOUND_MS before its read
// began has read stale data. The control run, with an agent that follows
// no feed, must find stale reads (so the audit can fail).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { fork, spawn } = require('node:child_process');
const { memshelf, segName, cleanup } = require('../testlib/util.js');
const { Redis, startRedis, commandCalls, freePort } = require('../testlib/redis.js');
const { KEYS, WRITERS, key } = require('../testlib/audit.js');

const AGENT = process.env.MEMSHELF_AGENT_BIN;
const CHILD = path.join(__dirname, '..', 'testlib', 'audit-child.js');
const READERS = 4;

let server;
before(async () => {
  server = await startRedis();
});
after(() => {
  if (server) server.stop();
  cleanup();
});

function ready(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/readyz', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

async function startAgent(segment, feed) {
  assert.ok(
    AGENT && fs.existsSync(AGENT),
    'MEMSHELF_AGENT_BIN must name the memshelf-agent binary (scripts/test-node.sh builds it)',
  );
  const port = await freePort();
  const args = ['--segment', segment, '--create-capacity', '64MiB', '--broker', server.url,
    '--feed', feed, '--metrics-addr', `127.0.0.1:${port}`, '--log-level', 'warn'];
  if (feed === 'tracking') args.push('--tracking-prefix', 'audit:');
  const proc = spawn(AGENT, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    assert.equal(proc.exitCode, null, `the agent exited: ${proc.exitCode}`);
    if (await ready(port)) return proc;
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error('the agent never became ready');
}

function child(args) {
  return new Promise((resolve, reject) => {
    const c = fork(CHILD, args);
    let msg;
    c.on('message', (m) => (msg = m));
    c.on('error', reject);
    c.on('exit', (code) => {
      if (msg && msg.error) reject(new Error(msg.error));
      else if (code !== 0 || !msg) reject(new Error(`audit child exited ${code}`));
      else resolve(msg);
    });
  });
}

async function audit(tag, feed, seconds) {
  const segment = segName(tag);
  const acks = segName(`${tag}-acks`);
  new memshelf.Cache(acks, { capacity: '8MiB' }).close();
  const agent = await startAgent(segment, feed);
  const r = new Redis(server.url);
  try {
    await r.flushall();
    await r.config('RESETSTAT');
    for (let i = 0; i < KEYS; i++) await r.set(key(i), 'v0');
    const runs = [];
    for (let w = 0; w < WRITERS; w++) runs.push(child(['writer', server.url, acks, String(seconds), String(w)]));
    for (let i = 0; i < READERS; i++) runs.push(child(['reader', server.url, segment, acks, String(seconds)]));
    const results = await Promise.all(runs);
    const readers = results.filter((x) => x.role === 'reader');
    const stats = new memshelf.Cache(segment, { create: false }).stats();
    return {
      reads: readers.reduce((a, x) => a + x.reads, 0),
      stale: readers.reduce((a, x) => a + x.stale, 0),
      worst: Math.max(0, ...readers.map((x) => x.worst || 0)),
      newer: readers.reduce((a, x) => a + x.newer, 0),
      writes: results.filter((x) => x.role === 'writer').reduce((a, x) => a + x.writes, 0),
      redisGets: await commandCalls(r, 'get'),
      hits: stats.hits,
      misses: stats.misses,
    };
  } finally {
    r.disconnect();
    agent.kill('SIGTERM');
    await new Promise((res) => (agent.exitCode !== null ? res() : agent.once('exit', res)));
  }
}

test('stale-read audit with the real agent in tracking mode: no stale read', { timeout: 180_000 }, async () => {
  const res = await audit('audit', 'tracking', 12);
  console.log(`near-cache audit (node): ${JSON.stringify(res)}`);
  // The run means something: many reads, most from memshelf, new versions
  // written and seen (so invalidations happened and were refilled).
  assert.ok(res.reads > 5_000 && res.writes > 1_000, JSON.stringify(res));
  assert.ok(res.hits > res.misses, JSON.stringify(res));
  assert.ok(res.redisGets < res.reads / 2, JSON.stringify(res));
  assert.ok(res.newer > 500, JSON.stringify(res));
  assert.equal(res.stale, 0, JSON.stringify(res));
});

test('the audit sees stale reads without invalidation (agent with --feed none)', { timeout: 120_000 }, async () => {
  const res = await audit('audit-none', 'none', 5);
  console.log(`without invalidation (node): ${JSON.stringify(res)}`);
  assert.ok(res.stale > 0, JSON.stringify(res));
});
