/**
 * Starts mariadbd (MariaDB 10.11) on a temp datadir, a unix socket and a
 * free loopback TCP port, with a password user for tests; `stop()` shuts it
 * down (SIGTERM, then SIGKILL) and removes the dir. Call it in afterAll.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, stopChild, trackChild } from './registry.js';

export interface TestMariadb {
  port: number;
  socket: string;
  dir: string;
  user: string;
  password: string;
  /** Go-driver DSN over TCP for `database`: `user:pass@tcp(127.0.0.1:port)/database`. */
  dsn(database: string): string;
  /** Runs SQL as root over the socket and returns stdout (tab-separated, no headers). */
  sql(statement: string): Promise<string>;
  stop(): Promise<void>;
}

function run(cmd: string, args: string[], timeout = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

export async function startMariadb(): Promise<TestMariadb> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-mariadb-'));
  const data = path.join(dir, 'data');
  const socket = path.join(dir, 'mysqld.sock');
  const user = 'obd';
  const password = 'obd:p@ss/word';
  let proc: ChildProcess | undefined;
  const stop = async () => {
    await stopChild(proc, 10_000);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
    await run('mariadb-install-db', [
      '--no-defaults',
      `--datadir=${data}`,
      ...asRoot,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
    ]);
    const port = await freePort();
    const log = path.join(dir, 'err.log');
    proc = spawn(
      'mariadbd',
      [
        '--no-defaults',
        `--datadir=${data}`,
        `--socket=${socket}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        ...asRoot,
        `--pid-file=${path.join(dir, 'mysqld.pid')}`,
        `--log-error=${log}`,
        '--skip-name-resolve',
        '--innodb-buffer-pool-size=32M',
        '--skip-log-bin',
      ],
      { stdio: 'ignore' },
    );
    proc.on('error', () => {});
    trackChild(proc);
    const sql = (statement: string) =>
      run('mariadb', ['--no-defaults', '-uroot', `--socket=${socket}`, '-N', '-B', '-e', statement], 30_000);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`mariadbd exited with ${proc.exitCode}: ${fs.readFileSync(log, 'utf8').slice(-2000)}`);
      try {
        await run('mariadb-admin', ['--no-defaults', '-uroot', `--socket=${socket}`, 'ping'], 5000);
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`mariadbd not ready after 30 s: ${fs.readFileSync(log, 'utf8').slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const q = password.replace(/'/g, "''");
    await sql(`CREATE USER '${user}'@'127.0.0.1' IDENTIFIED BY '${q}'; GRANT ALL PRIVILEGES ON *.* TO '${user}'@'127.0.0.1'; FLUSH PRIVILEGES;`);
    return {
      port,
      socket,
      dir,
      user,
      password,
      dsn: (database) => `${user}:${password}@tcp(127.0.0.1:${port})/${database}`,
      sql,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
