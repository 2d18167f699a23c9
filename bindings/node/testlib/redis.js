'use strict';
// A real redis-server for the memshelf/redis tests: a child process on a
// free loopback port, nothing saved, killed at exit. Also a client wrapper
// that runs a hook when a MULTI/EXEC reply is in (the helper's fill is then
// between Redis's answer and its store).
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const Redis = require('ioredis');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function ping(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('error', () => resolve(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (d) => {
      sock.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
  });
}

async function startRedis() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memshelf-redis-'));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
      '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    let exited = false;
    proc.once('exit', () => { exited = true; });
    const deadline = Date.now() + 10_000;
    while (!exited && Date.now() < deadline) {
      if (await ping(port)) {
        return {
          port,
          url: `redis://127.0.0.1:${port}/0`,
          stop() {
            proc.kill('SIGKILL');
            fs.rmSync(dir, { recursive: true, force: true });
          },
        };
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    proc.kill('SIGKILL');
  }
  throw new Error('redis-server did not start');
}

/** How many times Redis ran `command` since the last CONFIG RESETSTAT. */
async function commandCalls(client, command) {
  const info = await client.info('commandstats');
  const m = info.match(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm'));
  return m ? Number(m[1]) : 0;
}

/** `client` whose multi().exec() awaits `hook.fn(reply)` (when set) before resolving. */
function hooked(client, hook) {
  return new Proxy(client, {
    get(target, prop) {
      if (prop === 'multi') {
        return (...args) => {
          const m = target.multi(...args);
          const exec = m.exec.bind(m);
          m.exec = async (...a) => {
            const reply = await exec(...a);
            if (hook.fn) await hook.fn(reply);
            return reply;
          };
          return m;
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

module.exports = { Redis, startRedis, commandCalls, hooked, freePort };
