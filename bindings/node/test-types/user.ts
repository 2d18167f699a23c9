// A user's TypeScript file that uses every feature of memshelf and
// memshelf/keyv; scripts/test-node.sh compiles it with `tsc --strict`
// (tsconfig.json, with @types/node) and runs the compiled file.
import { Cache, unlink, invalidationMessage, LAYOUT_VERSION, MAX_KEY_LEN } from 'memshelf';
import type { Stats, HotKey, DumpReport, LoadReport, OpenOptions, PutOptions, GetOrSetOptions, MemshelfError, Key, Value, NodeBuffer } from 'memshelf';
import memshelf from 'memshelf';
import KeyvMemshelf, { KeyvMemshelf as NamedStore } from 'memshelf/keyv';
import { Keyv } from 'keyv';
import NearCacheDefault, { NearCache } from 'memshelf/redis';
import type { NearCacheOptions } from 'memshelf/redis';
import { Redis } from 'ioredis';
import { rmSync } from 'node:fs';

const name = `ts-user-${process.pid}`;
const opts: OpenOptions = { capacity: '8MiB', create: true, mode: 0o600, ttl: 0, ttlJitter: 0, maxValueSize: '1MiB' };
const cache = new Cache(name, opts);
const sameCache: Cache = new memshelf.Cache(name);

// Raw codec: Buffers out (Node's Buffer, with its methods).
const put: PutOptions = { ttl: 60, tags: ['users', Buffer.from('t')] };
cache.put('user:42', 'Ada', put);
const v: Buffer | null = cache.get('user:42');
const text: string | undefined = v?.toString('utf8');
const s: string | null = cache.getString('user:42');
const into: number = cache.getInto('user:42', new Uint8Array(16));
const has: boolean = cache.has(new Uint8Array([1, 2]));
const added: boolean = cache.add('other', new Uint8Array([1]), { ttl: 1 });
const many: Array<Buffer | null> = cache.getMany(['user:42', Buffer.from('other')]);
cache.putMany([['a', 'b'], [Buffer.from('c'), new Uint8Array([4])]], { ttl: 5 });
cache.putMany(new Map<Key, Value>([['m', 'n']]));
const n: number | bigint = cache.incr('ctr', 2, { ttl: 10 });
const big: number | bigint = cache.incr('ctr', 1n);
const left: number | null = cache.ttl('user:42');
const touched: boolean = cache.touch('user:42', 30);
cache.invalidateTag('users');
const removed: number = cache.deletePrefix('a');
const keys: string[] = cache.keys('u');
const keyBufs: NodeBuffer[] = cache.keyBuffers();
const deleted: boolean = cache.delete('other');
const stats: Stats = cache.stats();
const movedToMain: number = stats.moved_to_main;
const waits: number = stats.get_or_set_waits;
const latency: [number, number, number, number] = [stats.get_p50_ns, stats.get_p99_ns, stats.put_p50_ns, stats.put_p99_ns];
const skew: number = stats.hot_key_share + stats.get_samples + stats.put_samples;
const hot: HotKey[] = cache.hotKeys(3);
const hotBytes: NodeBuffer[] = hot.map((h) => h.keyBuffer);
const hotCounts: number[] = cache.hotKeys().map((h) => h.count);
const dumpFile = `/tmp/${name}.dump`;
const dumped: DumpReport = cache.dump(dumpFile);
const loaded: LoadReport = cache.load(dumpFile);
const loadProblem: string | null = loaded.problem;
const loadExpected: number | null = loaded.expected;
if (!loaded.complete || loaded.records !== dumped.entries) throw new Error(`load: ${loadProblem} ${loadExpected}`);
const props: [string, number, number, 'raw', boolean] = [cache.name, cache.capacity, cache.maxValueSize, cache.codec, cache.closed];
const gosOpts: GetOrSetOptions = { ttl: 5, lease: 2, grace: 1, negativeTtl: 3, tags: ['g'] };

// JSON codec: inferred from the option, values of any JSON type.
interface User { name: string; roles: string[] }
const json = new Cache(name, { codec: 'json' });
json.put('u:1', { name: 'Grace', roles: ['admin'] } satisfies User);
const back = json.get('u:1') as User | null;
const codec: 'json' = json.codec;
const jsonMany: unknown[] = json.getMany(['u:1']);
json.putMany([['u:2', { name: 'Alan', roles: [] }]]);

async function main(): Promise<void> {
  const filled: Buffer | null = await cache.getOrSet('gos', async () => 'computed', gosOpts);
  const sync: Buffer | null = await cache.getOrSet('gos2', () => new Uint8Array([1]));
  const none: Buffer | null = await cache.getOrSet('gos3', () => null);
  const user: User | null = await json.getOrSet<User>('u:3', async () => ({ name: 'Edsger', roles: [] }));

  // The Keyv store.
  const store = new KeyvMemshelf(cache);
  const owned = new NamedStore(`${name}-keyv`, { capacity: '1MiB' });
  const keyv = new Keyv<User>({ store, namespace: 'users' });
  await keyv.set('42', { name: 'Ada', roles: [] }, 1000);
  const fromKeyv: User | undefined = await keyv.get('42');
  const raw: string | undefined = await store.get('users:42');
  const ns: string | undefined = store.namespace;
  const url: string = store.opts.url;
  for await (const [k, val] of store.iterator('users')) console.log(k.length + val.length > 0);
  store.on('error', (e: unknown) => console.error(e));
  await owned.disconnect();

  // The Redis read-through helper (types only: nothing connects).
  const redisClient = new Redis({ lazyConnect: true });
  const nearOpts: NearCacheOptions = { defaultTtl: 60, lease: 5, negativeTtl: 1 };
  const near = new NearCache(redisClient, cache, nearOpts);
  const sameNear: NearCache<Redis> = new NearCacheDefault(redisClient, cache);
  const nearClient: Redis = near.redis;
  const nearCache: Cache<'raw'> = sameNear.cache;
  const nearUsage = async (): Promise<number> => {
    const got: Buffer | null = await near.get('user:42');
    const gotMany: Array<Buffer | null> = await near.getMany(['a', Buffer.from('b')]);
    const ok: 'OK' | null = await near.set('user:42', 'Ada', 'EX', 60);
    const gone: number = await near.del('user:42', 'user:43');
    return (got?.length ?? 0) + gotMany.length + (ok === null ? 0 : 1) + gone;
  };
  console.log(typeof nearUsage, nearClient === redisClient, nearCache === cache);
  redisClient.disconnect();

  try {
    cache.put('', 'x');
  } catch (e) {
    const err = e as MemshelfError;
    const code: string = err.code;
    console.log(code);
  }
  const msg: string = invalidationMessage({ op: 'del', keys: ['user:42'], cache: name, origin: 'o', seq: 1, ts: Date.now() });
  const versions: [number, number] = [LAYOUT_VERSION, MAX_KEY_LEN];
  console.log(JSON.stringify({ text, s, into, has, added, many: many.length, n: String(n), big: String(big), left, touched,
    removed, keys, keyBufs: keyBufs.length, deleted, movedToMain, waits, props, back, codec, jsonMany, filled: String(filled),
    sync: sync?.length, none, user, fromKeyv, raw: typeof raw, ns, url, msg, versions,
    latency, skew, hot: hotBytes.length, hotCounts, dumped }));
  rmSync(dumpFile, { force: true });
  cache.close();
  sameCache.close();
  json.close();
  unlink(name);
  unlink(`${name}-keyv`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
