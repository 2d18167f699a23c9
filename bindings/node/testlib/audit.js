'use strict';
// Constants of the near-cache stale-read audit (test/nearcache-agent.test.js
// and testlib/audit-child.js).
module.exports = {
  KEYS: 200,
  WRITERS: 2,
  // Propagation (Redis -> agent -> delete) is about a millisecond; the bound
  // leaves room for a loaded 2-core CI machine. Without the agent a stale
  // value is served for the whole default TTL (60 s).
  BOUND_MS: 1000,
  key: (i) => `audit:${i}`,
};
