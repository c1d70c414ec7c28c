/**
 * `npm run package [-- NAME...] [--out DIR]`: one executable per CLI entry
 * that runs without a Node installation (Node's single executable
 * applications; docs/decisions.md says why not pkg). Each entry is bundled
 * by esbuild into one CommonJS file, made into a SEA blob that also carries
 * the native addons, proto/ and package.json as assets (lib/sea.ts extracts
 * them at run time), and injected with postject into a stripped copy of this
 * node binary. A binary whose inputs did not change is kept as it is.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';
import { SEA_MANIFEST_ASSET, type SeaManifest } from '../lib/sea.js';

/** The binaries: name -> entry. Optional entries are skipped while their source is missing. */
const ENTRIES: { name: string; entry: string; optional?: boolean }[] = [
  { name: 'overlaybd', entry: 'lib/cli/overlaybd.ts' },
  { name: 'overlaybd-tcmu', entry: 'lib/cli/overlaybd-tcmu.ts' },
  { name: 'overlaybd-snapshotter', entry: 'lib/cli/overlaybd-snapshotter.ts', optional: true },
];

/** Node's fixed SEA fuse string (src/node_sea.cc): postject flips it to say a blob is present. */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const SELF = new URL(import.meta.url).pathname;
const require = createRequire(import.meta.url);

export interface PackagedBinary {
  name: string;
  file: string;
  bytes: number;
  /** false: the inputs were unchanged and the existing binary was kept. */
  built: boolean;
  ms: number;
}

export async function packageBinaries(opts: { out: string; names?: string[] }): Promise<PackagedBinary[]> {
  const entries = selectEntries(opts.names);
  const work = path.join(opts.out, '.build');
  fs.mkdirSync(work, { recursive: true });
  const assets = collectAssets(work);
  await bundle(entries, work);
  const node = nodeIdentity();
  const base = strippedNode(work, node);
  const out: PackagedBinary[] = [];
  for (const e of entries) {
    const t0 = Date.now();
    const file = path.join(opts.out, e.name);
    const script = path.join(work, `${e.name}.cjs`);
    const stamp = path.join(work, `${e.name}.stamp`);
    const key = sha256(fs.readFileSync(script), assets.manifest.key, node, fs.readFileSync(SELF));
    const built = !isCurrent(file, stamp, key);
    if (built) {
      const blob = makeBlob(e.name, script, assets.files, work);
      injectBlob(base, blob, file);
      fs.writeFileSync(stamp, `${key} ${fs.statSync(file).size}\n`);
    }
    out.push({ name: e.name, file, bytes: fs.statSync(file).size, built, ms: Date.now() - t0 });
  }
  return out;
}

function selectEntries(names?: string[]): typeof ENTRIES {
  const present = ENTRIES.filter((e) => {
    if (fs.existsSync(path.join(ROOT, e.entry))) return true;
    if (!e.optional) throw new Error(`entry ${e.entry} of binary ${e.name} is missing`);
    console.error(`skipping ${e.name}: ${e.entry} does not exist yet`);
    return false;
  });
  if (!names?.length) return present;
  for (const n of names) {
    if (!ENTRIES.some((e) => e.name === n)) throw new Error(`unknown binary '${n}' (known: ${ENTRIES.map((e) => e.name).join(', ')})`);
  }
  return present.filter((e) => names.includes(e.name));
}

/**
 * The files of the package root a binary carries: package.json (name and
 * version only), proto/, and the native addons under build/Release/. Also
 * writes the manifest naming them, keyed by their hash.
 */
function collectAssets(work: string): { manifest: SeaManifest; files: Record<string, string> } {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
  const pkgFile = path.join(work, 'package.json');
  fs.writeFileSync(pkgFile, JSON.stringify({ name: pkg.name, version: pkg.version }) + '\n');
  const sqliteDir = path.dirname(require.resolve('better-sqlite3/package.json'));
  const files: Record<string, string> = {
    'package.json': pkgFile,
    // The addon the ordinary loader would pick: prebuilds/ first, then build/Release.
    'build/Release/overlaybd.node': (require('node-gyp-build') as { path(dir: string): string }).path(ROOT),
    'build/Release/better_sqlite3.node': path.join(sqliteDir, 'build', 'Release', 'better_sqlite3.node'),
  };
  for (const rel of listFiles(path.join(ROOT, 'proto'))) files[`proto/${rel}`] = path.join(ROOT, 'proto', rel);
  const hash = crypto.createHash('sha256');
  const list: SeaManifest['files'] = [];
  for (const [rel, src] of Object.entries(files).sort(([a], [b]) => a.localeCompare(b))) {
    const data = fs.readFileSync(src);
    hash.update(`${rel}\0${data.length}\0`).update(data);
    list.push({ path: rel, size: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex') });
  }
  const manifest: SeaManifest = { key: hash.digest('hex').slice(0, 16), files: list };
  const manifestFile = path.join(work, SEA_MANIFEST_ASSET);
  fs.writeFileSync(manifestFile, JSON.stringify(manifest) + '\n');
  return { manifest, files: { ...files, [SEA_MANIFEST_ASSET]: manifestFile } };
}

function listFiles(dir: string, rel = ''): string[] {
  return fs
    .readdirSync(path.join(dir, rel), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(dir, path.posix.join(rel, e.name)) : [path.posix.join(rel, e.name)]));
}

/**
 * ESM TypeScript -> one CommonJS file per entry (a SEA main script must be
 * CommonJS). import.meta.url becomes the script's own URL (the executable's
 * path under SEA, where lib/sea.ts takes over); `bindings` is replaced so
 * better-sqlite3 loads its addon from the assets.
 */
async function bundle(entries: typeof ENTRIES, work: string): Promise<void> {
  await esbuild.build({
    entryPoints: Object.fromEntries(entries.map((e) => [e.name, path.join(ROOT, e.entry)])),
    outdir: work,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${process.versions.node}`,
    define: { 'import.meta.url': '__obdImportMetaUrl' },
    // SEA gives the main script a require() of built-in modules only, which
    // warns on the optional probes some packages make; a whole require()
    // rooted at the script answers them quietly.
    banner: {
      js: [
        'var __obdImportMetaUrl = require("node:url").pathToFileURL(__filename).href;',
        'require = require("node:module").createRequire(__filename);',
      ].join('\n'),
    },
    alias: { bindings: path.join(ROOT, 'scripts', 'package-bindings.cjs') },
    logLevel: 'warning',
  });
}

/** The node binary the executables copy: a change of it rebuilds them. */
function nodeIdentity(): string {
  const st = fs.statSync(process.execPath);
  return `${process.execPath} ${process.version} ${st.size} ${st.mtimeMs}`;
}

function isCurrent(file: string, stamp: string, key: string): boolean {
  try {
    return fs.readFileSync(stamp, 'utf8') === `${key} ${fs.statSync(file).size}\n`;
  } catch {
    return false;
  }
}

function makeBlob(name: string, script: string, assets: Record<string, string>, work: string): string {
  const blob = path.join(work, `${name}.blob`);
  const config = path.join(work, `${name}.sea.json`);
  fs.writeFileSync(
    config,
    JSON.stringify({ main: script, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, assets }, null, 2),
  );
  const r = spawnSync(process.execPath, ['--experimental-sea-config', config], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node --experimental-sea-config ${config} failed: ${r.stderr || r.stdout}`);
  return blob;
}

/**
 * This node without its debug info and static symbols (99 -> 86 MB), made
 * once per node binary; the dynamic symbols that addons link against
 * (napi_*) stay. Without binutils' strip, node as it is.
 */
function strippedNode(work: string, identity: string): string {
  if (spawnSync('strip', ['--version']).status !== 0) return process.execPath;
  const file = path.join(work, 'node');
  const idFile = `${file}.id`;
  if (fs.existsSync(file) && fs.existsSync(idFile) && fs.readFileSync(idFile, 'utf8') === identity) return file;
  fs.rmSync(idFile, { force: true });
  fs.copyFileSync(process.execPath, file);
  execFileSync('strip', [file]);
  fs.writeFileSync(idFile, identity);
  return file;
}

/** A copy of `base` with the blob injected, renamed into place when whole. */
function injectBlob(base: string, blob: string, file: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.copyFileSync(base, tmp);
    // postject's CLI in a child: LIEF prints a warning per ELF note of node's
    // (hundreds), shown only if the injection fails.
    const cli = path.join(path.dirname(require.resolve('postject')), 'cli.js');
    const r = spawnSync(process.execPath, [cli, tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`postject ${file} failed: ${r.stderr || r.stdout}`);
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function sha256(...parts: (string | Buffer)[]): string {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { out: { type: 'string', default: 'dist-bin' } }, allowPositionals: true });
  const out = path.resolve(values.out);
  const t0 = Date.now();
  for (const b of await packageBinaries({ out, names: positionals })) {
    const what = b.built ? `built in ${(b.ms / 1000).toFixed(1)} s` : 'unchanged';
    console.log(`${path.relative(process.cwd(), b.file) || b.file}  ${(b.bytes / 1e6).toFixed(1)} MB  ${what}`);
  }
  console.log(`packaged in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  main().catch((e: unknown) => {
    console.error(`package: ${(e as Error).message}`);
    process.exit(1);
  });
}
