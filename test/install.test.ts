/**
 * The package as npm users get it: `npm pack` of a copy of this checkout, then
 * `npm install <tarball>` in an empty project, which imports it from ESM, makes
 * and reads an image, and runs its bins. Once with the prebuilt addon in the
 * tarball, and once without it, when the install script builds the addon from
 * source (the slow part: the whole core on two cores).
 * The prebuild is the checkout's build/Release addon under prebuildify's name:
 * making a real one (`npm run build:prebuild`) would be a second native build.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from './helpers/vectors.js';

const tmp = tempDir('obd-install-');
afterAll(tmp.cleanup);
const PKG = '@dadi/overlaybd';
const PREBUILD = 'prebuilds/linux-x64/overlaybd.glibc.node';
// Top-level entries of the checkout the tarball is packed from.
const NOT_COPIED = new Set(['.git', 'node_modules', 'build', 'build-tools', 'dist', 'prebuilds', '.vitest-cache']);

/** Runs a command with npm's own variables removed (vitest may run under `npm test`); returns its stdout. */
function run(cmd: string, args: string[], cwd: string, extraEnv: Record<string, string> = {}) {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^npm_/i.test(k)) env[k] = v;
  const r = spawnSync(cmd, args, { cwd, env: { ...env, ...extraEnv }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited with ${r.status ?? r.signal}:\n${out.slice(-8000)}`);
  }
  return r.stdout;
}

/** `npm pack` in dir; returns the tarball's path and the files it holds. */
function pack(dir: string, dest: string, ignoreScripts: boolean): { tgz: string; files: string[] } {
  fs.mkdirSync(dest, { recursive: true });
  const args = ['pack', '--json', '--pack-destination', dest, ...(ignoreScripts ? ['--ignore-scripts'] : [])];
  const out = run('npm', args, dir);
  // npm prints prepack's output before the JSON.
  const [info] = JSON.parse(out.slice(out.search(/^\[/m))) as { filename: string; files: { path: string }[] }[];
  return { tgz: path.join(dest, info!.filename), files: info!.files.map((f) => f.path) };
}

/** An empty ESM project with the tarball installed (from the npm cache where it can). */
function install(name: string, tgz: string): string {
  const dir = path.join(tmp.dir, `app-${name}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
  fs.writeFileSync(path.join(dir, 'use.mjs'), USE);
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tgz], dir);
  return dir;
}

// What a user's program does: a writable layer, written, committed, read back.
const USE = `
import { commitLayer, createLayer, openImage } from '${PKG}';
const dir = process.argv[2];
const up = { data: dir + '/rw.data', index: dir + '/rw.index' };
await createLayer({ ...up, virtualSize: 64 << 20 });
const rw = await openImage({ lowers: [], upper: up });
const block = Buffer.alloc(4096);
block.write('hello from an installed package');
await rw.write(block, 1 << 20);
await rw.flush();
await rw.close();
await commitLayer({ ...up, out: dir + '/layer.commit' });
const ro = await openImage({ lowers: [dir + '/layer.commit'] });
const back = await ro.read(1 << 20, 31);
console.log(JSON.stringify({ size: ro.size, writable: ro.writable, text: back.toString() }));
await ro.close();
`;

function expectWorks(project: string) {
  const work = path.join(project, 'work');
  fs.mkdirSync(work);
  const out = run('node', ['use.mjs', work], project);
  expect(JSON.parse(out)).toEqual({ size: 64 << 20, writable: false, text: 'hello from an installed package' });
  // The bins are linked and run from the installed dist/.
  const help = run('npx', ['--no-install', 'overlaybd-create', '--help'], project);
  expect(help).toMatch(/overlaybd-create/);
  const layer = path.join(work, 'cli');
  run('npx', ['--no-install', 'overlaybd-create', `${layer}.data`, `${layer}.index`, '1'], project);
  expect(fs.statSync(`${layer}.data`).size).toBeGreaterThan(0);
}

let withPrebuild: { tgz: string; files: string[] };
let fromSource: { tgz: string; files: string[] };

beforeAll(() => {
  const src = path.join(tmp.dir, 'src');
  fs.cpSync(ROOT, src, { recursive: true, filter: (f) => !NOT_COPIED.has(path.relative(ROOT, f)) });
  // prepack's tsc resolves typescript and the types through this link.
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));
  // A build folder that must stay out of the tarball.
  fs.mkdirSync(path.join(src, 'build/Release'), { recursive: true });
  fs.writeFileSync(path.join(src, 'build/Release/stale.node'), '');
  fs.mkdirSync(path.join(src, path.dirname(PREBUILD)), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'build/Release/overlaybd.node'), path.join(src, PREBUILD));
  withPrebuild = pack(src, path.join(tmp.dir, 'with-prebuild'), false);
  // The same package without prebuilds (dist/ is built: no prepack needed).
  fs.rmSync(path.join(src, 'prebuilds'), { recursive: true });
  fromSource = pack(src, path.join(tmp.dir, 'from-source'), true);
}, 600_000);

describe('npm pack', () => {
  it('holds dist, the prebuild, the sources to build from, and no tests or builds', () => {
    const files = withPrebuild.files;
    for (const f of ['package.json', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/cli/overlaybd-create.js', PREBUILD, 'CMakeLists.txt', 'scripts/install.mjs', 'bindings/image.cpp', 'cpp/lsmt/index.h']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => /^(test|bench|build|lib|node_modules|cpp\/tools|cpp\/tests)\//.test(f))).toEqual([]);
    expect(fromSource.files.filter((f) => f.startsWith('prebuilds/'))).toEqual([]);
    expect(fromSource.files.length).toBe(files.length - 1);
  });
});

describe('npm install of the tarball', () => {
  it('uses the prebuilt addon', () => {
    const project = install('with-prebuild', withPrebuild.tgz);
    const installed = path.join(project, 'node_modules', PKG);
    expect(fs.existsSync(path.join(installed, PREBUILD))).toBe(true);
    // The install script found the prebuild usable and built nothing.
    expect(fs.existsSync(path.join(installed, 'build'))).toBe(false);
    expectWorks(project);
  }, 1_200_000);

  it('builds the addon from source when there is no prebuild', () => {
    const project = install('from-source', fromSource.tgz);
    const installed = path.join(project, 'node_modules', PKG);
    expect(fs.existsSync(path.join(installed, 'prebuilds'))).toBe(false);
    expect(fs.existsSync(path.join(installed, 'build/Release/overlaybd.node'))).toBe(true);
    expectWorks(project);
  }, 2_700_000);
});

describe('the install script', () => {
  it('builds from source outside npm without downloading Node headers', () => {
    // Under npm, cmake-js takes the headers from npm's nodedir setting; run()
    // drops npm's variables, so the script must find the running Node's own.
    // An empty HOME (where cmake-js keeps downloaded headers) and a dead
    // proxy make any download attempt fail the script.
    const home = path.join(tmp.dir, 'home');
    fs.mkdirSync(home);
    const dead = 'http://127.0.0.1:9';
    run('node', ['scripts/install.mjs'], ROOT, { OBD_BUILD_FROM_SOURCE: '1', HOME: home, HTTP_PROXY: dead, HTTPS_PROXY: dead, https_proxy: dead, http_proxy: dead });
    expect(fs.existsSync(path.join(home, '.cmake-js'))).toBe(false);
  }, 600_000);
});
