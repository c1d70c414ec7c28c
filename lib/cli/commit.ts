import { commitLayer, sealLayer } from '../layer.js';
import { intFlag, parse, removeOutputsOnSignals, usageError, zfileFlags, type Command } from './run.js';

export const commitCommand: Command = {
  name: 'overlaybd-commit',
  summary: 'commit a writable layer into a read-only layer',
  usage: `usage: overlaybd-commit [options] DATA_FILE [INDEX_FILE] COMMIT_FILE
       overlaybd-commit --seal DATA_FILE [INDEX_FILE]
       overlaybd-commit --commit_sealed SEALED_FILE COMMIT_FILE
  -m MSG                commit message (user_tag, at most 256 bytes)
      --uuid UUID       layer UUID (null UUID by default)
  -p, --parent-uuid U   parent UUID (the source layer's by default)
  -z                    compress into a ZFile (header rewritten, as upstream)
      --algorithm A     lz4 (default) or zstd
      --bs KB           ZFile block size: 4 (default), 8, 16, 32 or 64
      --compress_threads N  compressing threads (output bytes do not depend on it)
  -t                    wrap the ZFile in a tar (needs -z)
  -f                    replace an existing output
      --seal            seal the data file in place into a read-only layer
      --commit_sealed   commit a sealed file
A sparse layer has no index: give DATA_FILE COMMIT_FILE.`,
  async main(argv) {
    const { values: v, positionals: p } = parse(argv, {
      m: { type: 'string', short: 'm' },
      uuid: { type: 'string' },
      'parent-uuid': { type: 'string', short: 'p' },
      z: { type: 'boolean', short: 'z' },
      algorithm: { type: 'string' },
      bs: { type: 'string' },
      compress_threads: { type: 'string' },
      t: { type: 'boolean', short: 't' },
      f: { type: 'boolean', short: 'f' },
      seal: { type: 'boolean' },
      commit_sealed: { type: 'boolean' },
      verbose: { type: 'boolean' },
    });
    if (v.seal) {
      if (p.length < 1 || p.length > 2) throw usageError('--seal takes DATA_FILE [INDEX_FILE]');
      await sealLayer(p[0]!, p[1]);
      return;
    }
    let data: string, index: string | undefined, out: string;
    if (v.commit_sealed) {
      if (p.length !== 2) throw usageError('--commit_sealed takes SEALED_FILE COMMIT_FILE');
      [data, out] = p as [string, string];
    } else if (p.length === 3) {
      [data, index, out] = p as [string, string, string];
    } else if (p.length === 2) {
      [data, out] = p as [string, string];
    } else {
      throw usageError(`expected DATA_FILE [INDEX_FILE] COMMIT_FILE, got ${p.length} arguments`);
    }
    const zf = zfileFlags(v);
    removeOutputsOnSignals();
    if (v.t && !v.z) process.stderr.write('overlaybd-commit: -t is ignored without -z\n');
    await commitLayer({
      data,
      ...(index !== undefined ? { index } : {}),
      sealed: v.commit_sealed ?? false,
      out,
      ...(v.uuid ? { uuid: v.uuid } : {}),
      ...(v['parent-uuid'] ? { parentUuid: v['parent-uuid'] } : {}),
      ...(v.m !== undefined ? { message: v.m } : {}),
      ...(v.z
        ? {
            zfile: {
              ...zf,
              threads: intFlag('--compress_threads', v.compress_threads, 1) || 1,
            },
          }
        : {}),
      tar: Boolean(v.z && v.t),
      force: v.f ?? false,
    });
  },
};
