/**
 * A task's stdout and stderr through named pipes, as containerd's cio does:
 * the shim opens the fifo paths given at task create and copies the
 * process's output into them. We open the read ends first (non-blocking) and
 * hold a write end each until the shim has its own, so no EOF comes early
 * and no output is lost; EOF then means the shim closed its end.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { OverlaybdError } from '../errors.js';

export interface TaskIo {
  stdout: string;
  stderr: string;
  /** Call once the task is created: the shim holds its write ends, ours go. */
  shimAttached(): void;
  /** Resolves when both streams reached EOF (the shim closed them). */
  drained(): Promise<void>;
  close(): void;
}

function mkfifo(p: string): void {
  try {
    execFileSync('mkfifo', ['-m', '0600', p], { stdio: 'ignore' });
  } catch (e) {
    throw new OverlaybdError('EIO', `mkfifo ${p}: ${(e as Error).message}`);
  }
}

/** Fifos in a new dir under `parent` (default the OS temp dir), copied into `out` and `err`. */
export function openTaskIo(id: string, out: Writable, err: Writable, parent = os.tmpdir()): TaskIo {
  const dir = fs.mkdtempSync(path.join(parent, `obd-fifo-${id.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40)}-`));
  const sockets: net.Socket[] = [];
  const holders: number[] = [];
  const ends: Promise<void>[] = [];
  try {
    for (const [name, sink] of [
      ['stdout', out],
      ['stderr', err],
    ] as const) {
      const p = path.join(dir, name);
      mkfifo(p);
      const rfd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      holders.push(fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      const s = new net.Socket({ fd: rfd, readable: true, writable: false });
      sockets.push(s);
      s.on('data', (c: Buffer) => sink.write(c));
      ends.push(new Promise((resolve) => s.once('close', () => resolve())));
      s.on('error', () => {});
    }
  } catch (e) {
    for (const s of sockets) s.destroy();
    for (const fd of holders) fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const dropHolders = () => {
    for (const fd of holders.splice(0)) fs.closeSync(fd);
  };
  return {
    stdout: path.join(dir, 'stdout'),
    stderr: path.join(dir, 'stderr'),
    shimAttached: dropHolders,
    drained: async () => {
      await Promise.all(ends);
    },
    close() {
      dropHolders();
      for (const s of sockets) s.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
