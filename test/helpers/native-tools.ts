/**
 * Builds the native test drivers (cpp/tools/<name>.cpp) with CMake + Ninja
 * into build-tools and returns their paths. Configures once and builds each
 * tool once per test process; builds are queued so two tests never run
 * ninja in the same directory at the same time.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// Beside build/, at its depth: ccache then shares the core's objects with
// the addon's build (CMakeLists.txt).
const buildDir = path.join(repoRoot, 'build-tools');

let queue: Promise<unknown> = Promise.resolve();
let configured: Promise<void> | undefined;
const built = new Map<string, Promise<string>>();

function serial<T>(fn: () => Promise<T>): Promise<T> {
  const next = queue.then(fn, fn);
  queue = next.catch(() => undefined);
  return next;
}

async function step(cmd: string, args: string[]): Promise<void> {
  try {
    await run(cmd, args, { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024 });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? err.message}`);
  }
}

function configure(): Promise<void> {
  configured ??= serial(() =>
    step('cmake', ['-S', repoRoot, '-B', buildDir, '-G', 'Ninja', '-DCMAKE_BUILD_TYPE=Release']),
  );
  return configured;
}

/**
 * Path of the built executable for cpp/tools/<name>.cpp. OBD_NATIVE_TOOLS_DIR
 * points at tools built elsewhere (a sanitizer build, say) and skips building.
 */
export function nativeTool(name: string): Promise<string> {
  const prebuilt = process.env.OBD_NATIVE_TOOLS_DIR;
  if (prebuilt) return Promise.resolve(path.join(prebuilt, name));
  let p = built.get(name);
  if (!p) {
    p = configure().then(() =>
      serial(async () => {
        await step('ninja', ['-C', buildDir, name]);
        const exe = path.join(buildDir, name);
        if (!existsSync(exe)) throw new Error(`ninja built no ${exe}`);
        return exe;
      }),
    );
    built.set(name, p);
    p.catch(() => built.delete(name));
  }
  return p;
}
