// The declarations alone, without @types/node (tsconfig.no-node.json has
// "types": []): a browser-style or Deno-style typecheck of memshelf code.
import { Cache } from 'memshelf';
import type { Stats, NodeBuffer } from 'memshelf';
import { KeyvMemshelf } from 'memshelf/keyv';
import { NearCache } from 'memshelf/redis';
import type { IoredisLike } from 'memshelf/redis';

export async function near(c: Cache, client: IoredisLike): Promise<number> {
  const n = new NearCache(client, c, { defaultTtl: 10 });
  const v: NodeBuffer | null = await n.get('k');
  return (v?.length ?? 0) + (await n.del('k'));
}

export function use(c: Cache): number {
  const v: Uint8Array | null = c.get('k');
  const b: NodeBuffer | null = c.get('k');
  const s: Stats = c.stats();
  const j = new Cache('x', { codec: 'json' });
  const parsed: unknown = j.get('k');
  const store = new KeyvMemshelf(c);
  return (v?.length ?? 0) + (b?.byteLength ?? 0) + s.moved_to_main + (parsed === null ? 0 : 1) + (store.namespace?.length ?? 0);
}
