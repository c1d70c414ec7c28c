/**
 * The snapshot metadata store: containerd 1.6's snapshots/storage semantics
 * (bolt.go) in SQLite at `<root>/metadata.db`. Ids are decimal and
 * auto-incrementing; once committed, an id is never reused. A parent is
 * referenced by id, so a Commit that renames a key keeps its children's
 * links. Calls run one at a time inside `tx()`, which commits before the
 * caller answers.
 */
import Database from 'better-sqlite3';
import { OverlaybdError } from '../errors.js';
import { native } from '../native.js';
import { parseFilters, type Adaptor } from './filters.js';

export type Kind = 'VIEW' | 'ACTIVE' | 'COMMITTED';

export interface Info {
  name: string;
  parent: string;
  kind: Kind;
  labels: Record<string, string>;
  /** Microseconds since the epoch (containerd's suite checks times against its own ns clock). */
  createdUs: number;
  updatedUs: number;
}

export interface Usage {
  size: number;
  inodes: number;
}

/** An Active or View snapshot as the storage layer sees it. */
export interface Snapshot {
  id: string;
  kind: Kind;
  /** Nearest first. */
  parentIds: string[];
}

interface Row {
  id: number;
  key: string;
  kind: Kind;
  parent_id: number | null;
  parent: string | null;
  labels: string;
  created: number;
  updated: number;
  size: number;
  inodes: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('VIEW', 'ACTIVE', 'COMMITTED')),
  parent_id INTEGER REFERENCES snapshots(id),
  labels TEXT NOT NULL DEFAULT '{}',
  created INTEGER NOT NULL, -- microseconds since the epoch
  updated INTEGER NOT NULL,
  size INTEGER NOT NULL DEFAULT 0,
  inodes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
`;

/** The wall clock in microseconds (native: see realtimeMicros in bindings/common.cpp). */
function nowUs(): number {
  return native().realtimeMicros() as number;
}

const SELECT = `SELECT s.*, p.key AS parent FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id`;

function notFound(msg: string): OverlaybdError {
  return new OverlaybdError('ENOENT', msg);
}

function toInfo(r: Row): Info {
  return {
    name: r.key,
    parent: r.parent ?? '',
    kind: r.kind,
    labels: JSON.parse(r.labels) as Record<string, string>,
    createdUs: r.created,
    updatedUs: r.updated,
  };
}

/** containerd's filter fields for a snapshot: kind, name, parent, labels.<k>. */
export function infoAdaptor(info: Info): Adaptor {
  return (fp) => {
    switch (fp[0]) {
      case 'kind':
        return [info.kind.toLowerCase(), true];
      case 'name':
        return [info.name, true];
      case 'parent':
        return [info.parent, true];
      case 'labels': {
        const k = fp.slice(1).join('.');
        return Object.hasOwn(info.labels, k) ? [info.labels[k]!, true] : ['', false];
      }
    }
    return ['', false];
  };
}

export class MetaStore {
  readonly #db: Database.Database;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(db: Database.Database) {
    this.#db = db;
  }

  static open(file: string): MetaStore {
    // The clock of nowUs is in the native addon, whose first load (dlopen,
    // 35 ms here) would otherwise fall in the first Prepare a pull waits on.
    native();
    let db: Database.Database;
    try {
      db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.exec(SCHEMA);
    } catch (e) {
      throw new OverlaybdError('DB_ERROR', `metadata ${file}: ${(e as Error).message}`, { cause: e });
    }
    return new MetaStore(db);
  }

  close(): void {
    this.#db.close();
  }

  /**
   * Runs `fn` alone in one write transaction: committed when it resolves,
   * rolled back when it throws. Calls queue behind each other, so `fn` may
   * await (device attach) while holding the store.
   */
  tx<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = async (): Promise<T> => {
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        const out = await fn();
        this.#db.exec('COMMIT');
        return out;
      } catch (e) {
        if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
        throw e;
      }
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => {});
    return p;
  }

  #row(key: string): Row | undefined {
    return this.#db.prepare(`${SELECT} WHERE s.key = ?`).get(key) as Row | undefined;
  }

  #parentIds(parentId: number | null): string[] {
    const out: string[] = [];
    const stmt = this.#db.prepare('SELECT parent_id FROM snapshots WHERE id = ?');
    for (let id = parentId; id !== null; ) {
      out.push(String(id));
      id = (stmt.get(id) as { parent_id: number | null } | undefined)?.parent_id ?? null;
    }
    return out;
  }

  createSnapshot(kind: Kind, key: string, parent: string, labels: Record<string, string> = {}): Snapshot {
    if (kind !== 'ACTIVE' && kind !== 'VIEW') {
      throw new OverlaybdError('EINVAL', `snapshot type ${kind} invalid; only snapshots of type Active or View can be created`);
    }
    if (key === '') throw new OverlaybdError('EINVAL', 'snapshot key must not be empty');
    let parentId: number | null = null;
    if (parent !== '') {
      const p = this.#row(parent);
      if (!p) throw notFound(`missing parent ${JSON.stringify(parent)} bucket`);
      if (p.kind !== 'COMMITTED') throw new OverlaybdError('EINVAL', `parent ${JSON.stringify(parent)} is not committed snapshot`);
      parentId = p.id;
    }
    if (this.#row(key)) throw new OverlaybdError('EEXIST', `snapshot ${key}: already exists`);
    const now = nowUs();
    const r = this.#db
      .prepare('INSERT INTO snapshots (key, kind, parent_id, labels, created, updated) VALUES (?, ?, ?, ?, ?, ?)')
      .run(key, kind, parentId, JSON.stringify(labels), now, now);
    return { id: String(r.lastInsertRowid), kind, parentIds: this.#parentIds(parentId) };
  }

  /** An Active or View snapshot by key (FailedPrecondition for a Committed one). */
  getSnapshot(key: string): Snapshot {
    const r = this.#row(key);
    if (!r) throw notFound(`snapshot ${key} does not exist`);
    if (r.kind !== 'ACTIVE' && r.kind !== 'VIEW') throw new OverlaybdError('FAILED_PRECONDITION', `requested snapshot ${key} not active or view`);
    return { id: String(r.id), kind: r.kind, parentIds: this.#parentIds(r.parent_id) };
  }

  getInfo(key: string): { id: string; info: Info; usage: Usage; parentIds: string[] } {
    const r = this.#row(key);
    if (!r) throw notFound(`snapshot ${key} does not exist`);
    return { id: String(r.id), info: toInfo(r), usage: { size: r.size, inodes: r.inodes }, parentIds: this.#parentIds(r.parent_id) };
  }

  /** Labels only: `labels` replaces them, `labels.<k>` sets or deletes one; no paths = replace. */
  updateInfo(name: string, labels: Record<string, string>, fieldpaths: string[]): Info {
    const r = this.#row(name);
    if (!r) throw notFound(`snapshot ${name} does not exist`);
    let next = JSON.parse(r.labels) as Record<string, string>;
    if (fieldpaths.length === 0) next = { ...labels };
    for (const p of fieldpaths) {
      if (p.startsWith('labels.')) {
        const k = p.slice('labels.'.length);
        if (Object.hasOwn(labels, k)) next[k] = labels[k]!;
        else delete next[k];
      } else if (p === 'labels') next = { ...labels };
      else throw new OverlaybdError('EINVAL', `cannot update ${JSON.stringify(p)} field on snapshot ${JSON.stringify(name)}`);
    }
    this.#db.prepare('UPDATE snapshots SET labels = ?, updated = ? WHERE id = ?').run(JSON.stringify(next), nowUs(), r.id);
    return toInfo(this.#row(name)!);
  }

  /** Active `key` becomes Committed `name` with `labels` (not inherited); returns its id. */
  commitActive(key: string, name: string, usage: Usage, labels: Record<string, string> = {}): string {
    if (this.#row(name)) throw new OverlaybdError('EEXIST', `committed snapshot ${name}: already exists`);
    const r = this.#row(key);
    if (!r) throw notFound(`failed to get active snapshot ${JSON.stringify(key)}`);
    if (r.kind !== 'ACTIVE') throw new OverlaybdError('FAILED_PRECONDITION', `snapshot ${JSON.stringify(key)} is not active`);
    const now = nowUs();
    this.#db
      .prepare("UPDATE snapshots SET key = ?, kind = 'COMMITTED', labels = ?, created = ?, updated = ?, size = ?, inodes = ? WHERE id = ?")
      .run(name, JSON.stringify(labels), now, now, usage.size, usage.inodes, r.id);
    return String(r.id);
  }

  remove(key: string): { id: string; kind: Kind } {
    const r = this.#row(key);
    if (!r) throw notFound(`snapshot ${key}: not found`);
    const child = this.#db.prepare('SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1').get(r.id);
    if (child) throw new OverlaybdError('FAILED_PRECONDITION', 'cannot remove snapshot with child');
    this.#db.prepare('DELETE FROM snapshots WHERE id = ?').run(r.id);
    return { id: String(r.id), kind: r.kind };
  }

  /** Infos matching any of `filters` (containerd syntax; EINVAL when one does not parse). */
  walkInfo(filters: string[]): Info[] {
    const f = parseFilters(filters);
    const rows = this.#db.prepare(`${SELECT} ORDER BY s.key`).all() as Row[];
    return rows.map(toInfo).filter((i) => f(infoAdaptor(i)));
  }

  /** The labels of the snapshot with `id` ({} when there is none): one row, not the whole id map. */
  labelsById(id: string): Record<string, string> {
    const r = this.#db.prepare('SELECT labels FROM snapshots WHERE id = ?').get(Number(id)) as { labels: string } | undefined;
    return r ? (JSON.parse(r.labels) as Record<string, string>) : {};
  }

  /** id -> key of every snapshot. */
  idMap(): Map<string, string> {
    const rows = this.#db.prepare('SELECT id, key FROM snapshots').all() as { id: number; key: string }[];
    return new Map(rows.map((r) => [String(r.id), r.key]));
  }

  /** Ids of the Active and View snapshots, each with its parent chain (nearest first). */
  liveChains(): { id: string; parentIds: string[] }[] {
    const rows = this.#db.prepare(`SELECT id, parent_id FROM snapshots WHERE kind != 'COMMITTED'`).all() as { id: number; parent_id: number | null }[];
    return rows.map((r) => ({ id: String(r.id), parentIds: this.#parentIds(r.parent_id) }));
  }
}
