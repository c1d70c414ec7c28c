/**
 * The embedded dedup store: one SQLite file (better-sqlite3), WAL mode,
 * created with its tables on first use. Several convertor processes may
 * share the file; writers wait on each other through busy_timeout.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { OverlaybdError } from '../../errors.js';
import { SQLITE_SCHEMA, layerFromRow, manifestFromRow, type LayerRow, type ManifestRow } from './schema.js';
import { LayerEntrySchema, ManifestEntrySchema, type DedupStore, type LayerEntry, type ManifestEntry } from './types.js';
import { parseWith } from '../../config.js';

/** `$XDG_CACHE_HOME/overlaybd/convertor.db`, else `~/.cache/overlaybd/convertor.db`. */
export function defaultSqlitePath(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache');
  return path.join(cache, 'overlaybd', 'convertor.db');
}

function dbError(file: string, op: string, e: unknown): OverlaybdError {
  return new OverlaybdError('DB_ERROR', `sqlite ${file}: ${op}: ${(e as Error).message}`, { cause: e });
}

export class SqliteDedupStore implements DedupStore {
  readonly kind = 'sqlite' as const;
  readonly location: string;
  private db: Database.Database | undefined;
  private readonly stmts: {
    getLayer: Database.Statement<[string, string, string], LayerRow>;
    layersByHost: Database.Statement<[string, string], LayerRow>;
    insertLayer: Database.Statement<[string, string, string, string, number]>;
    deleteLayer: Database.Statement<[string, string, string]>;
    getManifest: Database.Statement<[string, string, string, string], ManifestRow>;
    manifestsByHost: Database.Statement<[string, string, string], ManifestRow>;
    insertManifest: Database.Statement<[string, string, string, string, number, string]>;
    deleteManifest: Database.Statement<[string, string, string, string]>;
  };

  constructor(file: string = defaultSqlitePath()) {
    this.location = file;
    try {
      if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
      const db = new Database(file, { timeout: 10_000 });
      this.db = db;
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.transaction(() => {
        for (const sql of SQLITE_SCHEMA) db.exec(sql);
      })();
      this.stmts = {
        getLayer: db.prepare('SELECT * FROM overlaybd_layers WHERE host = ? AND repo = ? AND chain_id = ?'),
        layersByHost: db.prepare('SELECT * FROM overlaybd_layers WHERE host = ? AND chain_id = ? ORDER BY repo'),
        insertLayer: db.prepare(
          'INSERT INTO overlaybd_layers (host, repo, chain_id, data_digest, data_size) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
        ),
        deleteLayer: db.prepare('DELETE FROM overlaybd_layers WHERE host = ? AND repo = ? AND chain_id = ?'),
        getManifest: db.prepare(
          'SELECT * FROM overlaybd_manifests WHERE host = ? AND repo = ? AND mediatype = ? AND src_digest = ?',
        ),
        manifestsByHost: db.prepare(
          'SELECT * FROM overlaybd_manifests WHERE host = ? AND mediatype = ? AND src_digest = ? ORDER BY repo',
        ),
        insertManifest: db.prepare(
          'INSERT INTO overlaybd_manifests (host, repo, src_digest, out_digest, data_size, mediatype) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
        ),
        deleteManifest: db.prepare(
          'DELETE FROM overlaybd_manifests WHERE host = ? AND repo = ? AND mediatype = ? AND src_digest = ?',
        ),
      };
    } catch (e) {
      this.db?.close();
      throw dbError(file, 'open', e);
    }
  }

  private run<T>(op: string, f: () => T): Promise<T> {
    if (!this.db) return Promise.reject(new OverlaybdError('DB_ERROR', `sqlite ${this.location}: ${op}: store is closed`));
    try {
      return Promise.resolve(f());
    } catch (e) {
      return Promise.reject(e instanceof OverlaybdError ? e : dbError(this.location, op, e));
    }
  }

  getLayerEntry(host: string, repo: string, chainId: string): Promise<LayerEntry | undefined> {
    return this.run('get layer', () => {
      const r = this.stmts.getLayer.get(host, repo, chainId);
      return r ? layerFromRow(r) : undefined;
    });
  }

  getLayerEntriesByHost(host: string, chainId: string): Promise<LayerEntry[]> {
    return this.run('get layers by host', () => this.stmts.layersByHost.all(host, chainId).map(layerFromRow));
  }

  createLayerEntry(entry: LayerEntry): Promise<boolean> {
    return this.run('create layer', () => {
      const e = parseWith(LayerEntrySchema, entry, 'invalid layer entry');
      return this.stmts.insertLayer.run(e.host, e.repo, e.chainId, e.dataDigest, e.dataSize).changes === 1;
    });
  }

  deleteLayerEntry(host: string, repo: string, chainId: string): Promise<void> {
    return this.run('delete layer', () => {
      this.stmts.deleteLayer.run(host, repo, chainId);
    });
  }

  getManifestEntry(host: string, repo: string, mediaType: string, srcDigest: string): Promise<ManifestEntry | undefined> {
    return this.run('get manifest', () => {
      const r = this.stmts.getManifest.get(host, repo, mediaType, srcDigest);
      return r ? manifestFromRow(r) : undefined;
    });
  }

  getManifestEntriesByHost(host: string, mediaType: string, srcDigest: string): Promise<ManifestEntry[]> {
    return this.run('get manifests by host', () => this.stmts.manifestsByHost.all(host, mediaType, srcDigest).map(manifestFromRow));
  }

  createManifestEntry(entry: ManifestEntry): Promise<boolean> {
    return this.run('create manifest', () => {
      const e = parseWith(ManifestEntrySchema, entry, 'invalid manifest entry');
      return this.stmts.insertManifest.run(e.host, e.repo, e.srcDigest, e.outDigest, e.dataSize, e.mediaType).changes === 1;
    });
  }

  deleteManifestEntry(host: string, repo: string, mediaType: string, srcDigest: string): Promise<void> {
    return this.run('delete manifest', () => {
      this.stmts.deleteManifest.run(host, repo, mediaType, srcDigest);
    });
  }

  close(): Promise<void> {
    this.db?.close();
    this.db = undefined;
    return Promise.resolve();
  }
}
