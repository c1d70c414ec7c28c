/** The dedup stores (sqlite, mysql, none) and openDedupStore (open.ts), which picks one. */
export * from './types.js';
export { parseMysqlDsn, redactDsn, parseGoDuration, type MysqlConnection } from './dsn.js';
export { SqliteDedupStore, defaultSqlitePath } from './sqlite.js';
export { MysqlDedupStore } from './mysql.js';
export { NoDedupStore } from './none.js';
export { DedupConfigSchema, openDedupStore, type DedupConfig } from './open.js';
