/**
 * The dedup store contract, run against SQLite and a real MariaDB, plus DSN
 * parsing and store selection.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MysqlDedupStore,
  NoDedupStore,
  SqliteDedupStore,
  defaultSqlitePath,
  openDedupStore,
  parseGoDuration,
  parseMysqlDsn,
  redactDsn,
  type DedupStore,
  type LayerEntry,
  type ManifestEntry,
} from '../lib/convertor/db/index.js';
import { isOverlaybdError } from '../lib/errors.js';
import { startMariadb, type TestMariadb } from './helpers/mariadb.js';

const d = (c: string) => 'sha256:' + c.repeat(64).slice(0, 64);
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER = 'application/vnd.docker.distribution.manifest.v2+json';

let workDir: string;
beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-db-test-'));
});
afterAll(() => {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

function contract(name: string, open: () => Promise<DedupStore>, reopen?: () => Promise<DedupStore>) {
  describe(`${name} store contract`, () => {
    let s: DedupStore;
    beforeAll(async () => {
      s = await open();
    });
    afterAll(async () => {
      await s?.close();
    });

    const layer = (repo: string, chain: string, data: string, size = 1000): LayerEntry => ({
      host: 'reg.example:5000',
      repo,
      chainId: d(chain),
      dataDigest: d(data),
      dataSize: size,
    });

    it('creates, gets and deletes layer entries', async () => {
      expect(await s.getLayerEntry('reg.example:5000', 'lib/a', d('1'))).toBeUndefined();
      expect(await s.createLayerEntry(layer('lib/a', '1', 'a'))).toBe(true);
      expect(await s.getLayerEntry('reg.example:5000', 'lib/a', d('1'))).toEqual(layer('lib/a', '1', 'a'));
      // Keys are exact: another host, repo or chain finds nothing.
      expect(await s.getLayerEntry('reg.example', 'lib/a', d('1'))).toBeUndefined();
      expect(await s.getLayerEntry('reg.example:5000', 'lib/b', d('1'))).toBeUndefined();
      await s.deleteLayerEntry('reg.example:5000', 'lib/a', d('1'));
      expect(await s.getLayerEntry('reg.example:5000', 'lib/a', d('1'))).toBeUndefined();
      await s.deleteLayerEntry('reg.example:5000', 'lib/a', d('1'));
    });

    it('keeps the first row when the same key is created again', async () => {
      expect(await s.createLayerEntry(layer('lib/dup', '2', 'b', 5))).toBe(true);
      expect(await s.createLayerEntry(layer('lib/dup', '2', 'b', 5))).toBe(false);
      expect(await s.createLayerEntry(layer('lib/dup', '2', 'c', 6))).toBe(false);
      expect(await s.getLayerEntry('reg.example:5000', 'lib/dup', d('2'))).toEqual(layer('lib/dup', '2', 'b', 5));
    });

    it('finds layers across repositories of one host', async () => {
      await s.createLayerEntry(layer('team/z', '3', 'e'));
      await s.createLayerEntry(layer('team/x', '3', 'e'));
      await s.createLayerEntry(layer('team/y', '4', 'f'));
      await s.createLayerEntry({ ...layer('team/w', '3', 'e'), host: 'other.example' });
      const rows = await s.getLayerEntriesByHost('reg.example:5000', d('3'));
      expect(rows.map((r) => r.repo)).toEqual(['team/x', 'team/z']);
      expect(rows.every((r) => r.dataDigest === d('e') && r.dataSize === 1000)).toBe(true);
      expect(await s.getLayerEntriesByHost('reg.example:5000', d('9'))).toEqual([]);
    });

    it('stores sizes past 4 GiB exactly', async () => {
      const big = layer('big/one', '5', 'a', 2 ** 40 + 7);
      await s.createLayerEntry(big);
      expect((await s.getLayerEntry(big.host, big.repo, big.chainId))?.dataSize).toBe(2 ** 40 + 7);
    });

    const manifest = (repo: string, src: string, out: string, mediaType = OCI): ManifestEntry => ({
      host: 'reg.example:5000',
      repo,
      srcDigest: d(src),
      outDigest: d(out),
      dataSize: 1234,
      mediaType,
    });

    it('creates, gets and deletes manifest entries keyed by media type', async () => {
      expect(await s.createManifestEntry(manifest('app/a', '6', 'a'))).toBe(true);
      expect(await s.createManifestEntry(manifest('app/a', '6', 'b', DOCKER))).toBe(true);
      expect(await s.createManifestEntry(manifest('app/a', '6', 'c'))).toBe(false);
      expect(await s.getManifestEntry('reg.example:5000', 'app/a', OCI, d('6'))).toEqual(manifest('app/a', '6', 'a'));
      expect(await s.getManifestEntry('reg.example:5000', 'app/a', DOCKER, d('6'))).toEqual(manifest('app/a', '6', 'b', DOCKER));
      await s.deleteManifestEntry('reg.example:5000', 'app/a', OCI, d('6'));
      expect(await s.getManifestEntry('reg.example:5000', 'app/a', OCI, d('6'))).toBeUndefined();
      expect(await s.getManifestEntry('reg.example:5000', 'app/a', DOCKER, d('6'))).toBeDefined();
    });

    it('finds manifests across repositories of one host', async () => {
      await s.createManifestEntry(manifest('app/q', '7', 'a'));
      await s.createManifestEntry(manifest('app/p', '7', 'a'));
      await s.createManifestEntry(manifest('app/r', '7', 'a', DOCKER));
      const rows = await s.getManifestEntriesByHost('reg.example:5000', OCI, d('7'));
      expect(rows.map((r) => r.repo)).toEqual(['app/p', 'app/q']);
      expect(await s.getManifestEntriesByHost('other.example', OCI, d('7'))).toEqual([]);
    });

    it('refuses malformed entries with CONFIG_INVALID naming the field', async () => {
      await expect(s.createLayerEntry({ ...layer('x/y', '8', 'a'), chainId: 'nope' })).rejects.toThrow(/invalid layer entry: chainId: /);
      await expect(s.createLayerEntry({ ...layer('x/y', '8', 'a'), dataSize: -1 })).rejects.toThrow(/invalid layer entry: dataSize: /);
      await expect(s.createManifestEntry({ ...manifest('x/y', '8', 'a'), host: '' })).rejects.toSatisfy(
        (e: unknown) => isOverlaybdError(e, 'CONFIG_INVALID') && /invalid manifest entry: host: /.test((e as Error).message),
      );
    });

    if (reopen) {
      it('keeps its rows across a reopen, with another handle open meanwhile', async () => {
        const other = await reopen();
        try {
          expect(await other.getLayerEntry('reg.example:5000', 'lib/dup', d('2'))).toEqual(layer('lib/dup', '2', 'b', 5));
          await other.createLayerEntry(layer('seen/by', '9', 'a'));
          expect(await s.getLayerEntry('reg.example:5000', 'seen/by', d('9'))).toEqual(layer('seen/by', '9', 'a'));
        } finally {
          await other.close();
        }
      });
    }

    it('fails with DB_ERROR once closed', async () => {
      const t = await (reopen ?? open)();
      await t.close();
      await expect(t.getLayerEntry('h', 'r', d('1'))).rejects.toSatisfy((e: unknown) => isOverlaybdError(e, 'DB_ERROR'));
    });
  });
}

const sqliteFile = () => path.join(workDir, 'nested', 'dir', 'convertor.db');
contract(
  'SQLite',
  () => openDedupStore({ dbType: 'sqlite', dbStr: sqliteFile() }),
  () => openDedupStore({ dbType: 'sqlite', dbStr: sqliteFile() }),
);

describe('MariaDB', () => {
  let db: TestMariadb | undefined;
  beforeAll(async () => {
    db = await startMariadb();
  });
  afterAll(async () => {
    await db?.stop();
  });

  contract(
    'MariaDB',
    () => openDedupStore({ dbType: 'mysql', dbStr: db!.dsn('conversioncache') }),
    () => openDedupStore({ dbType: 'mysql', dbStr: `mysql://${db!.user}:${encodeURIComponent(db!.password)}@127.0.0.1:${db!.port}/conversioncache` }),
  );

  it('creates upstream-compatible tables', async () => {
    const cols = await db!.sql(
      "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'conversioncache' ORDER BY table_name, ordinal_position",
    );
    expect(cols.trim().split('\n')).toEqual([
      'overlaybd_layers\thost\tvarchar',
      'overlaybd_layers\trepo\tvarchar',
      'overlaybd_layers\tchain_id\tvarchar',
      'overlaybd_layers\tdata_digest\tvarchar',
      'overlaybd_layers\tdata_size\tbigint',
      'overlaybd_manifests\thost\tvarchar',
      'overlaybd_manifests\trepo\tvarchar',
      'overlaybd_manifests\tsrc_digest\tvarchar',
      'overlaybd_manifests\tout_digest\tvarchar',
      'overlaybd_manifests\tdata_size\tbigint',
      'overlaybd_manifests\tmediatype\tvarchar',
    ]);
    const keys = await db!.sql(
      "SELECT table_name, index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index) FROM information_schema.statistics WHERE table_schema = 'conversioncache' GROUP BY table_name, index_name ORDER BY table_name, index_name",
    );
    expect(keys.trim().split('\n').sort()).toEqual(
      [
        'overlaybd_layers\tPRIMARY\thost,repo,chain_id',
        'overlaybd_layers\tindex_registry_chainId\thost,chain_id',
        'overlaybd_manifests\tPRIMARY\thost,repo,src_digest,mediatype',
        'overlaybd_manifests\tindex_registry_src_digest\thost,src_digest,mediatype',
      ].sort(),
    );
  });

  it('reads rows another convertor wrote with plain SQL, over the unix socket', async () => {
    await db!.sql(
      `INSERT INTO conversioncache.overlaybd_layers VALUES ('h:1', 'up/stream', '${d('a')}', '${d('b')}', 42)`,
    );
    const s = await openDedupStore({ dbType: 'mysql', dbStr: `root@unix(${db!.socket})/conversioncache` });
    try {
      expect(await s.getLayerEntry('h:1', 'up/stream', d('a'))).toEqual({
        host: 'h:1',
        repo: 'up/stream',
        chainId: d('a'),
        dataDigest: d('b'),
        dataSize: 42,
      });
    } finally {
      await s.close();
    }
  });

  it('reports a wrong password or a dead server as DB_ERROR without the password', async () => {
    const e1 = await MysqlDedupStore.open(`obd:wrong-secret@tcp(127.0.0.1:${db!.port})/conversioncache`).catch((e: unknown) => e);
    expect(isOverlaybdError(e1, 'DB_ERROR')).toBe(true);
    expect((e1 as Error).message).toMatch(new RegExp(`mysql 127.0.0.1:${db!.port}/conversioncache \\(user obd\\): connect: .*denied`));
    expect((e1 as Error).message).not.toMatch(/wrong-secret/);
    const e2 = await MysqlDedupStore.open('u:p@tcp(127.0.0.1:1)/x?timeout=2s').catch((e: unknown) => e);
    expect(isOverlaybdError(e2, 'DB_ERROR')).toBe(true);
    expect((e2 as Error).message).toMatch(/127\.0\.0\.1:1\/x/);
  });
});

describe('store selection and DSNs', () => {
  it('parses Go driver DSNs and mysql:// URLs', () => {
    expect(parseMysqlDsn('user:pass@tcp(127.0.0.1:3306)/conversioncache')).toEqual({
      user: 'user',
      password: 'pass',
      host: '127.0.0.1',
      port: 3306,
      database: 'conversioncache',
      ignored: [],
    });
    expect(parseMysqlDsn('u:p:a@b/c@tcp(db.example)/cc?timeout=1m30s&parseTime=true&charset=utf8mb4,utf8')).toEqual({
      user: 'u',
      password: 'p:a@b/c',
      host: 'db.example',
      port: 3306,
      database: 'cc',
      connectTimeoutMs: 90_000,
      charset: 'utf8mb4',
      ignored: ['parseTime'],
    });
    expect(parseMysqlDsn('root@unix(/run/mysqld/mysqld.sock)/db')).toMatchObject({ user: 'root', password: '', socketPath: '/run/mysqld/mysqld.sock', database: 'db' });
    expect(parseMysqlDsn('/db')).toMatchObject({ user: 'root', host: '127.0.0.1', port: 3306, database: 'db' });
    expect(parseMysqlDsn('u@tcp([::1]:3307)/db')).toMatchObject({ host: '::1', port: 3307 });
    expect(parseMysqlDsn('mysql://a%40b:p%2Fq@dbhost:3310/cache?connectTimeout=500')).toMatchObject({
      user: 'a@b',
      password: 'p/q',
      host: 'dbhost',
      port: 3310,
      database: 'cache',
      connectTimeoutMs: 500,
    });
    expect(parseMysqlDsn('mysql://u@localhost/db?socket=/tmp/m.sock')).toMatchObject({ socketPath: '/tmp/m.sock' });
    expect(parseGoDuration('250ms')).toBe(250);
    expect(parseGoDuration('5x')).toBeUndefined();
  });

  it('refuses bad DSNs with CONFIG_INVALID, never echoing the password', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['user:secret@tcp(127.0.0.1:3306)', /no "\/dbname"|bad database name/],
      ['user:secret@tcp(127.0.0.1:99999)/db', /bad port "99999"/],
      ['user:secret@udp(127.0.0.1)/db', /unsupported network "udp"/],
      ['user:secret@unix(relative.sock)/db', /must be absolute/],
      ['user:secret@tcp(h)/bad name', /bad database name/],
      ['user:secret@tcp(h)/db?timeout=soon', /bad timeout "soon"/],
      ['mysql://user:secret@/db', /no host|not a URL/],
      ['mysql://user:secret@h:1', /bad database name/],
    ];
    for (const [dsn, re] of cases) {
      let err: unknown;
      try {
        parseMysqlDsn(dsn);
      } catch (e) {
        err = e;
      }
      expect(isOverlaybdError(err, 'CONFIG_INVALID'), dsn).toBe(true);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).toMatch(/--db-str/);
      expect((err as Error).message).not.toMatch(/secret/);
    }
    expect(redactDsn('u:secret@tcp(h:1)/db')).toBe('u:***@tcp(h:1)/db');
    expect(redactDsn('mysql://u:secret@h/db')).toBe('mysql://u:***@h/db');
  });

  it('selects sqlite by default, none on request, and validates the type', async () => {
    const prev = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = path.join(workDir, 'xdg');
    try {
      expect(defaultSqlitePath()).toBe(path.join(workDir, 'xdg', 'overlaybd', 'convertor.db'));
      const s = await openDedupStore();
      expect(s.kind).toBe('sqlite');
      expect(s.location).toBe(defaultSqlitePath());
      expect(fs.existsSync(defaultSqlitePath())).toBe(true);
      await s.close();
    } finally {
      if (prev === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = prev;
    }
    const n = await openDedupStore({ dbType: 'none' });
    expect(n).toBeInstanceOf(NoDedupStore);
    expect(await n.createLayerEntry({ host: 'h', repo: 'r', chainId: d('1'), dataDigest: d('2'), dataSize: 1 })).toBe(false);
    expect(await n.getLayerEntriesByHost('h', d('1'))).toEqual([]);
    await expect(openDedupStore({ dbType: 'postgres' as never })).rejects.toThrow(/invalid --db-type "postgres"/);
    await expect(openDedupStore({ dbType: 'mysql' })).rejects.toThrow(/--db-type mysql needs --db-str/);
    const file = path.join(workDir, 'wal.db');
    const s = new SqliteDedupStore(file);
    await s.close();
    expect(fs.existsSync(file)).toBe(true);
    // A path that cannot be a database file.
    fs.mkdirSync(path.join(workDir, 'adir.db'));
    expect(() => new SqliteDedupStore(path.join(workDir, 'adir.db'))).toThrow(/sqlite .*adir\.db: open/);
  });
});
