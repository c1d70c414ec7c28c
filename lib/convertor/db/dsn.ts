/**
 * MySQL connection strings: Go's go-sql-driver/mysql DSN, as upstream's
 * `--db-str` takes it (`user:pass@tcp(127.0.0.1:3306)/conversioncache`,
 * `user@unix(/run/mysqld/mysqld.sock)/db?timeout=5s`), and `mysql://` URLs
 * (`mysql://user:pass@host:3306/db`, `?socket=/path` for a unix socket).
 */
import { OverlaybdError } from '../../errors.js';

export interface MysqlConnection {
  user: string;
  password: string;
  /** TCP host and port, unless `socketPath` is set. */
  host?: string;
  port?: number;
  socketPath?: string;
  database: string;
  /** From `timeout=` (Go duration) or `connectTimeout=` (ms). */
  connectTimeoutMs?: number;
  charset?: string;
  /** Query parameters we do not act on (kept so callers can warn). */
  ignored: string[];
}

/** The DSN with its password masked, for messages and logs. */
export function redactDsn(dsn: string): string {
  if (dsn.startsWith('mysql://')) return dsn.replace(/^(mysql:\/\/[^:/@]*):[^@]*@/, '$1:***@');
  const slash = dsn.lastIndexOf('/');
  const at = dsn.lastIndexOf('@', slash >= 0 ? slash : dsn.length);
  if (at < 0) return dsn;
  const cred = dsn.slice(0, at);
  const c = cred.indexOf(':');
  return c < 0 ? dsn : `${cred.slice(0, c)}:***${dsn.slice(at)}`;
}

function bad(dsn: string, why: string): OverlaybdError {
  return new OverlaybdError(
    'CONFIG_INVALID',
    `invalid --db-str "${redactDsn(dsn)}": ${why}; want user:pass@tcp(host:port)/dbname, user@unix(/path.sock)/dbname or mysql://user:pass@host:port/dbname`,
  );
}

/** Go duration (`5s`, `1m30s`, `500ms`) to milliseconds. */
export function parseGoDuration(s: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    if (m.index !== consumed) return undefined;
    total += Number(m[1]) * unit[m[2]!]!;
    consumed += m[0].length;
  }
  return consumed === s.length && consumed > 0 ? Math.round(total) : undefined;
}

const DB_NAME = /^[A-Za-z0-9_$-]{1,64}$/;

function hostPort(dsn: string, addr: string, defPort: number): { host: string; port: number } {
  let host = addr;
  let port = defPort;
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(addr) ?? /^([^:]*)(?::(\d+))?$/.exec(addr);
  if (!m) throw bad(dsn, `bad address "${addr}"`);
  host = m[1] || '127.0.0.1';
  if (m[2] !== undefined) {
    port = Number(m[2]);
    if (!(port > 0 && port < 65536)) throw bad(dsn, `bad port "${m[2]}"`);
  }
  return { host, port };
}

function applyParams(dsn: string, conn: MysqlConnection, params: URLSearchParams): void {
  for (const [k, v] of params) {
    if (k === 'timeout') {
      const ms = parseGoDuration(v);
      if (ms === undefined) throw bad(dsn, `bad timeout "${v}" (a Go duration such as 5s)`);
      conn.connectTimeoutMs = ms;
    } else if (k === 'connectTimeout') {
      if (!/^\d+$/.test(v)) throw bad(dsn, `bad connectTimeout "${v}" (milliseconds)`);
      conn.connectTimeoutMs = Number(v);
    } else if (k === 'charset') conn.charset = v.split(',')[0]!;
    else if (k === 'socket' || k === 'socketPath') {
      conn.socketPath = v;
      delete conn.host;
      delete conn.port;
    } else conn.ignored.push(k);
  }
}

export function parseMysqlDsn(dsn: string): MysqlConnection {
  if (typeof dsn !== 'string' || dsn.trim().length === 0) throw bad(String(dsn ?? ''), 'empty');
  if (dsn.startsWith('mysql://') || dsn.startsWith('mariadb://')) return parseUrl(dsn);
  // [user[:password]@][net[(addr)]]/dbname[?params]
  const slash = dsn.lastIndexOf('/', dsn.includes('?') ? dsn.indexOf('?') : dsn.length);
  if (slash < 0) throw bad(dsn, 'no "/dbname"');
  const head = dsn.slice(0, slash);
  const tail = dsn.slice(slash + 1);
  const q = tail.indexOf('?');
  const database = q >= 0 ? tail.slice(0, q) : tail;
  const params = new URLSearchParams(q >= 0 ? tail.slice(q + 1) : '');
  if (!DB_NAME.test(database)) throw bad(dsn, `bad database name "${database}"`);
  const at = head.lastIndexOf('@');
  const cred = at >= 0 ? head.slice(0, at) : '';
  const netAddr = at >= 0 ? head.slice(at + 1) : head;
  const c = cred.indexOf(':');
  const user = c >= 0 ? cred.slice(0, c) : cred;
  const password = c >= 0 ? cred.slice(c + 1) : '';
  const conn: MysqlConnection = { user: user || 'root', password, database, ignored: [] };
  if (netAddr === '') {
    conn.host = '127.0.0.1';
    conn.port = 3306;
  } else {
    const m = /^([a-z0-9]+)(?:\((.*)\))?$/.exec(netAddr);
    if (!m) throw bad(dsn, `bad network address "${netAddr}" (want tcp(host:port) or unix(/path))`);
    const net = m[1]!;
    const addr = m[2] ?? '';
    if (net === 'tcp' || net === 'tcp4' || net === 'tcp6') {
      Object.assign(conn, hostPort(dsn, addr || '127.0.0.1:3306', 3306));
    } else if (net === 'unix') {
      if (!addr.startsWith('/')) throw bad(dsn, `unix socket path "${addr}" must be absolute`);
      conn.socketPath = addr;
    } else {
      throw bad(dsn, `unsupported network "${net}" (tcp or unix)`);
    }
  }
  applyParams(dsn, conn, params);
  return conn;
}

function parseUrl(dsn: string): MysqlConnection {
  let u: URL;
  try {
    u = new URL(dsn);
  } catch {
    throw bad(dsn, 'not a URL');
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!DB_NAME.test(database)) throw bad(dsn, `bad database name "${database}"`);
  const conn: MysqlConnection = {
    user: decodeURIComponent(u.username) || 'root',
    password: decodeURIComponent(u.password),
    database,
    ignored: [],
  };
  if (u.hostname) {
    conn.host = u.hostname.replace(/^\[|\]$/g, '');
    conn.port = u.port ? Number(u.port) : 3306;
  } else if (!u.searchParams.has('socket') && !u.searchParams.has('socketPath')) {
    throw bad(dsn, 'no host');
  }
  applyParams(dsn, conn, u.searchParams);
  return conn;
}
