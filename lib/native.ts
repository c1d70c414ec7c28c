/**
 * Loads the native addon (prebuilds/ first, then build/Release) and registers
 * OverlaybdError with it, so native failures surface as that class.
 * Binding files add their functions to `NativeAddon` as they land.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';
import { OverlaybdError } from './errors.js';

const require = createRequire(import.meta.url);

/** The package root: the folder holding package.json (lib/ or dist/lib/ sit below it). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeAddon = Record<string, any>;

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (addon) return addon;
  const root = packageRoot();
  let loaded: NativeAddon;
  try {
    // OBD_ADDON_PATH: a developer's private build (e.g. with modules left out).
    const override = process.env.OBD_ADDON_PATH;
    loaded = (override ? require(path.resolve(override)) : require('node-gyp-build')(root)) as NativeAddon;
  } catch (e) {
    throw new OverlaybdError(
      'ENOTSUP',
      `cannot load the native addon from ${root}/prebuilds or ${root}/build/Release: ${(e as Error).message}. ` +
        'Run `npm rebuild @dadi/overlaybd` (builds it from source), or `bash scripts/setup.sh` in a checkout.',
      { cause: e },
    );
  }
  loaded.setErrorClass(OverlaybdError);
  addon = loaded;
  return loaded;
}
