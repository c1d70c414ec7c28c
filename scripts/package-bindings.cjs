// Stands in for the `bindings` package inside single executables (see
// scripts/package.ts): better-sqlite3 asks it for 'better_sqlite3.node',
// which the binary carries as an asset instead of a file in node_modules.
const { requireSeaAddon } = require('../lib/sea.ts');

module.exports = function bindings(name) {
  const file = typeof name === 'string' ? name : name.bindings;
  return requireSeaAddon(file.endsWith('.node') ? file : `${file}.node`);
};
