/**
 * Running as a single executable (Node SEA, built by `npm run package`): the
 * files a checkout keeps beside the code (the native addons, proto/,
 * package.json) travel inside the binary as SEA assets. dlopen and
 * proto-loader need real files, so on first start they are written to
 * `$XDG_CACHE_HOME/overlaybd/sea/<key>` (else ~/.cache/..., else a private
 * per-user folder in the temp dir), laid out as a package root, and reused
 * by every later start of a binary with the same assets (key: their hash).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as sea from 'node:sea';
import { OverlaybdError } from './errors.js';

/** The asset naming the others: written by scripts/package.ts. */
export const SEA_MANIFEST_ASSET = 'manifest.json';

export interface SeaManifest {
  /** sha256 over every file's path and content: names the extraction folder. */
  key: string;
  /** Files of the package root, each carried as the asset named by its relative path. */
  files: { path: string; size: number; sha256: string }[];
}

export function isSea(): boolean {
  return sea.isSea();
}

let root: string | undefined;

/** The extracted package root of this binary (extracting it on first use). */
export function seaRoot(): string {
  if (root) return root;
  const manifest = JSON.parse(sea.getAsset(SEA_MANIFEST_ASSET, 'utf8')) as SeaManifest;
  const tried: string[] = [];
  for (const base of cacheBases()) {
    let dir = manifest.key;
    try {
      dir = path.join(base(), manifest.key);
      if (!isComplete(dir, manifest)) extract(dir, manifest);
      root = dir;
      return dir;
    } catch (e) {
      tried.push(`${dir}: ${(e as Error).message}`);
    }
  }
  throw new OverlaybdError('EIO', `cannot write this binary's native files to a cache folder (${tried.join('; ')})`);
}

/** Where the package roots go, best first (the temp folder is made only when needed). */
function cacheBases(): (() => string)[] {
  const xdg = process.env.XDG_CACHE_HOME;
  const cache = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');
  return [() => path.join(cache, 'overlaybd', 'sea'), privateTmp];
}

/** `$TMPDIR/overlaybd-sea-<uid>`, only if this user owns it and nobody else may write to it. */
function privateTmp(): string {
  const uid = process.getuid?.() ?? 0;
  const dir = path.join(os.tmpdir(), `overlaybd-sea-${uid}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new OverlaybdError('EPERM', `${dir} is not a private folder of uid ${uid}`);
  }
  return dir;
}

/** What a verified folder's files looked like: a start that sees the same skips hashing them. */
const VERIFIED = '.verified';

/**
 * Every file there with its content: a folder damaged or edited since is
 * replaced, never loaded. Hashing the ~6 MB took 100 ms on a loaded 2-core
 * VM, so it runs only when a file's size, mtime or inode differs from what
 * the last verification saw.
 */
function isComplete(dir: string, manifest: SeaManifest): boolean {
  try {
    if (fs.readFileSync(path.join(dir, VERIFIED), 'utf8') === fingerprint(dir, manifest)) return true;
  } catch {
    // not verified yet, or a file is missing: hash below
  }
  const ok = manifest.files.every((f) => {
    try {
      const data = fs.readFileSync(path.join(dir, f.path));
      return data.length === f.size && crypto.createHash('sha256').update(data).digest('hex') === f.sha256;
    } catch {
      return false;
    }
  });
  if (ok) writeVerified(dir, manifest);
  return ok;
}

function fingerprint(dir: string, manifest: SeaManifest): string {
  return manifest.files
    .map((f) => {
      const st = fs.statSync(path.join(dir, f.path));
      return `${f.path} ${st.size} ${st.mtimeMs} ${st.ino}\n`;
    })
    .join('');
}

/** Best effort: without it the next start hashes again. */
function writeVerified(dir: string, manifest: SeaManifest): void {
  try {
    const tmp = path.join(dir, `${VERIFIED}.${process.pid}`);
    fs.writeFileSync(tmp, fingerprint(dir, manifest));
    fs.renameSync(tmp, path.join(dir, VERIFIED));
  } catch {
    // a read-only folder: verified on every start
  }
}

/** Writes the files to a fresh folder beside `dir`, then renames it into place (another process may win the race). */
function extract(dir: string, manifest: SeaManifest): void {
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 });
  const tmp = `${dir}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  try {
    for (const f of manifest.files) {
      const file = path.join(tmp, f.path);
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
      fs.writeFileSync(file, new Uint8Array(sea.getRawAsset(f.path) as ArrayBuffer), { mode: f.path.endsWith('.node') ? 0o755 : 0o644 });
    }
    writeVerified(tmp, manifest); // a rename keeps each file's mtime and inode
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      if (isComplete(dir, manifest)) return; // another process won
      if (!fs.existsSync(dir)) throw e;
      // A damaged folder: move it aside, then take its place.
      const stale = `${tmp}.stale`;
      fs.renameSync(dir, stale);
      fs.rmSync(stale, { recursive: true, force: true });
      fs.renameSync(tmp, dir);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Loads a native addon carried in this binary (`build/Release/<file>` of its package root). */
export function requireSeaAddon(file: string): unknown {
  const dir = seaRoot();
  return createRequire(path.join(dir, 'package.json'))(path.join(dir, 'build', 'Release', file));
}
