/**
 * overlaybd-apply onto an image whose lowers are remote, as upstream's
 * `--service_config_path`: the layer's changes land in the local upper
 * while the lowers are read on demand through the image service's cache.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLayer } from '../lib/layer.js';
import { runTool } from './helpers/cli.js';
import { fsck, pythonTar, unmountAll, withMount } from './helpers/ext4.js';
import { remoteBookworm, writeGlobalConfig, type RemoteBookworm } from './helpers/remote-image.js';
import { tempDir } from './helpers/vectors.js';

let remote: RemoteBookworm;
let tmp: { dir: string; cleanup: () => void };

beforeAll(async () => {
  remote = await remoteBookworm();
  tmp = tempDir('obd-apply-remote-');
}, 600_000);

afterAll(async () => {
  unmountAll();
  await remote?.close();
  tmp?.cleanup();
});

/** `<dir>/config.v1.json`: the remote bookworm lowers and a new empty upper of the same size. */
async function configWithUpper(dir: string): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const upper = { data: path.join(dir, 'upper.data'), index: path.join(dir, 'upper.index') };
  await createLayer({ ...upper, virtualSize: 2 * 1024 ** 3 });
  return remote.writeConfig(dir, { upper });
}

describe('overlaybd-apply onto remote lowers', () => {
  it('applies a layer over the registry-held base; the tree shows both', async () => {
    const g = writeGlobalConfig(path.join(tmp.dir, 'g'));
    const config = await configWithUpper(path.join(tmp.dir, 'img'));
    const layer = pythonTar(
      path.join(tmp.dir, 'layer.tar'),
      `with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:
    data = b'applied over a remote base\\n'
    i = tarfile.TarInfo('etc/obd-remote.txt'); i.size = len(data); t.addfile(i, io.BytesIO(data))
    t.addfile(tarfile.TarInfo('etc/.wh.issue'))`,
    );
    const r = runTool('overlaybd-apply', ['--service_config_path', g.file, '--verbose', layer, config]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/done: 2 entries \(1 files, 0 dirs, 1 whiteouts\)/);
    // The base came through the configured cache, not from local files.
    expect(fs.readdirSync(g.cacheDir).length).toBeGreaterThan(0);

    const raw = path.join(tmp.dir, 'device.img');
    const fd = fs.openSync(raw, 'w');
    try {
      execFileSync(process.execPath, ['--import', 'tsx', 'lib/cli/overlaybd.ts', 'dump', '--global', g.file, config], { stdio: ['ignore', fd, 'pipe'] });
    } finally {
      fs.closeSync(fd);
    }
    const check = fsck(raw);
    expect(check.code, check.out).toBe(0);
    await withMount(raw, (root) => {
      expect(fs.readFileSync(path.join(root, 'etc/obd-remote.txt'), 'utf8')).toBe('applied over a remote base\n');
      expect(fs.readFileSync(path.join(root, 'etc/debian_version'), 'utf8')).toMatch(/^12\./);
      expect(fs.existsSync(path.join(root, 'etc/issue'))).toBe(false);
    });
    fs.rmSync(raw);
  });

  it('names a bad service config, and refuses one for a --raw image', async () => {
    const config = await configWithUpper(path.join(tmp.dir, 'bad'));
    const g = path.join(tmp.dir, 'bad', 'overlaybd.json');
    fs.writeFileSync(g, JSON.stringify({ cacheConfig: { cacheType: 'file', cacheSizeGB: 'four' } }));
    const layer = pythonTar(path.join(tmp.dir, 'empty.tar'), `tarfile.open(out, 'w').close()`);
    const files = ['upper.data', 'upper.index'].map((f) => path.join(tmp.dir, 'bad', f));
    const before = files.map((f) => fs.readFileSync(f));
    const r = runTool('overlaybd-apply', ['--service_config_path', g, layer, config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('CONFIG_INVALID');
    expect(r.stderr).toContain('cacheConfig.cacheSizeGB');
    // Nothing was written to the upper.
    files.forEach((f, i) => expect(fs.readFileSync(f).equals(before[i]!), f).toBe(true));

    const raw = runTool('overlaybd-apply', ['--raw', '--service_config_path', g, layer, path.join(tmp.dir, 'x.img')]);
    expect(raw.code).toBe(2);
    expect(raw.stderr).toContain('--service_config_path does not apply to a --raw image');
  });
});
