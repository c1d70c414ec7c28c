/**
 * The on-disk layout under `root` (accelerated-container-image.md §1.2):
 * `snapshots/<ID>/{fs,work,block}` built as `snapshots/new-XXXX` and renamed
 * into place; du that counts 512-byte blocks per unique inode; the orphan
 * scan that Remove and Cleanup share.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Usage } from './metastore.js';

export class Layout {
  readonly snapshotsDir: string;
  constructor(readonly root: string) {
    this.snapshotsDir = path.join(root, 'snapshots');
  }

  dir(id: string): string {
    return path.join(this.snapshotsDir, id);
  }
  fs(id: string): string {
    return path.join(this.snapshotsDir, id, 'fs');
  }
  work(id: string): string {
    return path.join(this.snapshotsDir, id, 'work');
  }
  block(id: string): string {
    return path.join(this.snapshotsDir, id, 'block');
  }
  mountpoint(id: string): string {
    return path.join(this.snapshotsDir, id, 'block', 'mountpoint');
  }
  configPath(id: string): string {
    return path.join(this.block(id), 'config.v1.json');
  }

  /** Creates root (0700) and snapshots/. */
  ensure(): void {
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.snapshotsDir, { recursive: true, mode: 0o700 });
  }

  /** A temp dir holding fs/ (0755), block/mountpoint (0711) and, for an active snapshot, work/ (0711). */
  makeTemp(active: boolean): string {
    const td = fs.mkdtempSync(path.join(this.snapshotsDir, 'new-'));
    try {
      fs.mkdirSync(path.join(td, 'fs'), { mode: 0o755 });
      fs.chmodSync(path.join(td, 'fs'), 0o755);
      fs.mkdirSync(path.join(td, 'block', 'mountpoint'), { recursive: true, mode: 0o711 });
      if (active) fs.mkdirSync(path.join(td, 'work'), { mode: 0o711 });
    } catch (e) {
      fs.rmSync(td, { recursive: true, force: true });
      throw e;
    }
    return td;
  }

  /** Moves a built temp dir to snapshots/<id>; a dir left there by a crash is an orphan and goes first. */
  commitTemp(td: string, id: string): void {
    fs.rmSync(this.dir(id), { recursive: true, force: true });
    fs.renameSync(td, this.dir(id));
  }

  /** Dirs under snapshots/ that are not a live id (orphans and temp dirs). */
  orphans(ids: Set<string>): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.snapshotsDir);
    } catch {
      return [];
    }
    return names.filter((n) => !ids.has(n)).map((n) => path.join(this.snapshotsDir, n));
  }
}

/** du: 512-byte blocks of each unique inode under `dir` (not crossing into `skip`), and the inode count. */
export function diskUsage(dir: string, skip?: string): Usage {
  const seen = new Set<string>();
  let size = 0;
  const walk = (p: string) => {
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(p, { bigint: true });
    } catch {
      return; // removed meanwhile
    }
    const ino = `${st.dev}:${st.ino}`;
    if (!seen.has(ino)) {
      seen.add(ino);
      size += Number(st.blocks) * 512;
    }
    if (!st.isDirectory()) return;
    let names: string[] = [];
    try {
      names = fs.readdirSync(p);
    } catch {
      return;
    }
    for (const n of names) {
      const c = path.join(p, n);
      if (c !== skip) walk(c);
    }
  };
  walk(dir);
  return { size, inodes: seen.size };
}
