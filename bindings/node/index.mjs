// ES module entry: re-exports the CommonJS implementation.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const memshelf = require('./index.js');

export const { Cache, unlink, invalidationMessage, LAYOUT_VERSION, MAX_KEY_LEN } = memshelf;
export default memshelf;
