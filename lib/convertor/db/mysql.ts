/**
 * The shared dedup store on MySQL or MariaDB (mysql2), with upstream's
 * tables, so several convertor machines, ours or upstream's, share it.
 * The database and tables are created when missing.
 */
import mysql from 'mysql2/promise';
import { OverlaybdError } from '../../errors.js';
import { parseMysqlDsn, type MysqlConnection } from './dsn.js';
import { MYSQL_SCHEMA, layerFromRow, manifestFromRow, type LayerRow, type ManifestRow } from './schema.js';
import { LayerEntrySchema, ManifestEntrySchema, type DedupStore, type LayerEntry, type ManifestEntry } from './types.js';
import { parseWith } from '../../config.js';

function describe(c: MysqlConnection): string {
  return `mysql ${c.socketPath ? `unix:${c.socketPath}` : `${c.host}:${c.port}`}/${c.database}`;
}

function options(c: MysqlConnection, withDb: boolean): mysql.PoolOptions {
  return {
    user: c.user,
    password: c.password,
    ...(c.socketPath ? { socketPath: c.socketPath } : { host: c.host!, port: c.port! }),
    ...(withDb ? { database: c.database } : {}),
    connectTimeout: c.connectTimeoutMs ?? 10_000,
    ...(c.charset ? { charset: c.charset } : {}),
    connectionLimit: 4,
    waitForConnections: true,
    // Without FOUND_ROWS, a duplicate-key no-op update reports 0 affected rows.
    flags: ['-FOUND_ROWS'],
    supportBigNumbers: true,
    bigNumberStrings: false,
  };
}

export class MysqlDedupStore implements DedupStore {
  readonly kind = 'mysql' as const;
  readonly location: string;
  private pool: mysql.Pool | undefined;

  private constructor(location: string, pool: mysql.Pool) {
    this.location = location;
    this.pool = pool;
  }

  /** Connects (creating the database and tables when missing). `dsn`: Go driver DSN or `mysql://` URL. */
  static async open(dsn: string): Promise<MysqlDedupStore> {
    const conn = parseMysqlDsn(dsn);
    const where = describe(conn);
    let pool = mysql.createPool(options(conn, true));
    try {
      try {
        await pool.query('SELECT 1');
      } catch (e) {
        if ((e as { code?: string }).code !== 'ER_BAD_DB_ERROR') throw e;
        await pool.end();
        const admin = await mysql.createConnection(options(conn, false));
        try {
          await admin.query(`CREATE DATABASE IF NOT EXISTS \`${conn.database}\``);
        } finally {
          await admin.end();
        }
        pool = mysql.createPool(options(conn, true));
      }
      for (const sql of MYSQL_SCHEMA) await pool.query(sql);
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw new OverlaybdError('DB_ERROR', `${where} (user ${conn.user}): connect: ${(e as Error).message}`, { cause: e });
    }
    return new MysqlDedupStore(where, pool);
  }

  private async q<T>(op: string, sql: string, args: unknown[]): Promise<T> {
    if (!this.pool) throw new OverlaybdError('DB_ERROR', `${this.location}: ${op}: store is closed`);
    try {
      const [rows] = await this.pool.execute(sql, args as (string | number)[]);
      return rows as T;
    } catch (e) {
      throw new OverlaybdError('DB_ERROR', `${this.location}: ${op}: ${(e as Error).message}`, { cause: e });
    }
  }

  async getLayerEntry(host: string, repo: string, chainId: string): Promise<LayerEntry | undefined> {
    const rows = await this.q<LayerRow[]>(
      'get layer',
      'SELECT host, repo, chain_id, data_digest, data_size FROM overlaybd_layers WHERE host = ? AND repo = ? AND chain_id = ?',
      [host, repo, chainId],
    );
    return rows[0] ? layerFromRow(rows[0]) : undefined;
  }

  async getLayerEntriesByHost(host: string, chainId: string): Promise<LayerEntry[]> {
    const rows = await this.q<LayerRow[]>(
      'get layers by host',
      'SELECT host, repo, chain_id, data_digest, data_size FROM overlaybd_layers WHERE host = ? AND chain_id = ? ORDER BY repo',
      [host, chainId],
    );
    return rows.map(layerFromRow);
  }

  async createLayerEntry(entry: LayerEntry): Promise<boolean> {
    const e = parseWith(LayerEntrySchema, entry, 'invalid layer entry');
    const r = await this.q<mysql.ResultSetHeader>(
      'create layer',
      // A no-op update on a duplicate key: affectedRows is 1 for a new row, 0 otherwise.
      'INSERT INTO overlaybd_layers (host, repo, chain_id, data_digest, data_size) VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE host = host',
      [e.host, e.repo, e.chainId, e.dataDigest, e.dataSize],
    );
    return r.affectedRows === 1;
  }

  async deleteLayerEntry(host: string, repo: string, chainId: string): Promise<void> {
    await this.q('delete layer', 'DELETE FROM overlaybd_layers WHERE host = ? AND repo = ? AND chain_id = ?', [host, repo, chainId]);
  }

  async getManifestEntry(host: string, repo: string, mediaType: string, srcDigest: string): Promise<ManifestEntry | undefined> {
    const rows = await this.q<ManifestRow[]>(
      'get manifest',
      'SELECT host, repo, src_digest, out_digest, data_size, mediatype FROM overlaybd_manifests WHERE host = ? AND repo = ? AND mediatype = ? AND src_digest = ?',
      [host, repo, mediaType, srcDigest],
    );
    return rows[0] ? manifestFromRow(rows[0]) : undefined;
  }

  async getManifestEntriesByHost(host: string, mediaType: string, srcDigest: string): Promise<ManifestEntry[]> {
    const rows = await this.q<ManifestRow[]>(
      'get manifests by host',
      'SELECT host, repo, src_digest, out_digest, data_size, mediatype FROM overlaybd_manifests WHERE host = ? AND mediatype = ? AND src_digest = ? ORDER BY repo',
      [host, mediaType, srcDigest],
    );
    return rows.map(manifestFromRow);
  }

  async createManifestEntry(entry: ManifestEntry): Promise<boolean> {
    const e = parseWith(ManifestEntrySchema, entry, 'invalid manifest entry');
    const r = await this.q<mysql.ResultSetHeader>(
      'create manifest',
      'INSERT INTO overlaybd_manifests (host, repo, src_digest, out_digest, data_size, mediatype) VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE host = host',
      [e.host, e.repo, e.srcDigest, e.outDigest, e.dataSize, e.mediaType],
    );
    return r.affectedRows === 1;
  }

  async deleteManifestEntry(host: string, repo: string, mediaType: string, srcDigest: string): Promise<void> {
    await this.q(
      'delete manifest',
      'DELETE FROM overlaybd_manifests WHERE host = ? AND repo = ? AND mediatype = ? AND src_digest = ?',
      [host, repo, mediaType, srcDigest],
    );
  }

  async close(): Promise<void> {
    const p = this.pool;
    this.pool = undefined;
    await p?.end();
  }
}
