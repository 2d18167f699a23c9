// ES module entry of memshelf/redis: re-exports the CommonJS implementation.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const redis = require('./redis.js');

export const { NearCache } = redis;
export default redis.NearCache;
