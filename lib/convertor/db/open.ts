/**
 * Opens the dedup store that `--db-type` / `--db-str` name:
 * `sqlite` (default; `--db-str` is the file, a per-user cache file when
 * omitted), `mysql` (`--db-str` is a Go MySQL DSN or a mysql:// URL), or
 * `none`. A store's driver is loaded only when it is named: loading both
 * put 20-60 ms on every convertor start, whatever the type.
 */
import { z } from 'zod';
import { OverlaybdError } from '../../errors.js';
import { NoDedupStore } from './none.js';
import type { DedupStore } from './types.js';

export const DedupConfigSchema = z
  .object({
    dbType: z.enum(['sqlite', 'mysql', 'none']).default('sqlite'),
    dbStr: z.string().optional(),
  })
  .strict();
export type DedupConfig = z.input<typeof DedupConfigSchema>;

export async function openDedupStore(config: DedupConfig = {}): Promise<DedupStore> {
  const parsed = DedupConfigSchema.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue?.code === 'unrecognized_keys') {
      throw new OverlaybdError('CONFIG_INVALID', `dedup store options: unknown field(s) ${issue.keys.join(', ')} (dbType, dbStr)`);
    }
    const field = issue?.path[0] === 'dbType' ? '--db-type' : '--db-str';
    throw new OverlaybdError(
      'CONFIG_INVALID',
      `invalid ${field} ${JSON.stringify(issue?.path[0] === 'dbType' ? (config as { dbType?: unknown }).dbType : '')}: ${issue?.message ?? 'invalid'} (sqlite, mysql or none)`,
    );
  }
  const { dbType, dbStr } = parsed.data;
  switch (dbType) {
    case 'none':
      return new NoDedupStore();
    case 'sqlite': {
      const { SqliteDedupStore, defaultSqlitePath } = await import('./sqlite.js');
      return new SqliteDedupStore(dbStr && dbStr.length > 0 ? dbStr : defaultSqlitePath());
    }
    case 'mysql':
      if (!dbStr) {
        throw new OverlaybdError(
          'CONFIG_INVALID',
          '--db-type mysql needs --db-str, e.g. user:pass@tcp(127.0.0.1:3306)/conversioncache',
        );
      }
      return (await import('./mysql.js')).MysqlDedupStore.open(dbStr);
  }
}
