// ES module entry of memshelf/keyv: re-exports the CommonJS implementation.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const keyv = require('./keyv.js');

export const { KeyvMemshelf } = keyv;
export default keyv.KeyvMemshelf;
