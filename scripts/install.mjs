#!/usr/bin/env node
// npm's install hook: keep the prebuilt addon when it loads on this machine,
// else build it from cpp/ and bindings/ with cmake-js (a dependency for this).
// `npm install --build-from-source` or OBD_BUILD_FROM_SOURCE=1 skip the prebuild.
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
// What a from-source build needs on Debian (scripts/setup.sh installs these).
const DEBIAN_BUILD_PKGS = 'g++ cmake pkg-config zlib1g-dev liblz4-dev libzstd-dev liburing-dev libext2fs-dev comerr-dev';

/** Loads the addon the way lib/native.ts does; returns why it failed, or null. */
function loadError() {
  try {
    const addon = require('node-gyp-build')(root);
    return typeof addon.openImage === 'function' ? null : 'the addon lacks openImage';
  } catch (e) {
    return e.message;
  }
}

const fromSource = process.env.npm_config_build_from_source === 'true' || process.env.OBD_BUILD_FROM_SOURCE === '1';
if (!fromSource) {
  const why = loadError();
  if (why === null) process.exit(0);
  console.error(`overlaybd: no usable prebuilt addon (${why}); building from source`);
}

// cmake-js downloads Node's headers unless npm's nodedir names a folder with
// them; the running Node's own prefix has them (Debian, NodeSource, nodejs.org).
const env = { ...process.env };
const nodePrefix = path.resolve(path.dirname(process.execPath), '..');
if (!env.npm_config_nodedir && fs.existsSync(path.join(nodePrefix, 'include/node/node_api.h'))) env.npm_config_nodedir = nodePrefix;
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const built = spawnSync(process.execPath, [cmakeJs, 'compile', '-T', 'overlaybd_native'], { cwd: root, env, stdio: 'inherit' });
const why = built.status === 0 ? loadError() : `cmake-js exited with ${built.status ?? built.signal}`;
if (why !== null) {
  console.error(
    `overlaybd: building the native addon failed: ${why}.\n` +
      `On Debian/Ubuntu install the build packages, then run \`npm rebuild @dadi/overlaybd\`:\n` +
      `  apt-get install ${DEBIAN_BUILD_PKGS}`,
  );
  process.exit(1);
}
