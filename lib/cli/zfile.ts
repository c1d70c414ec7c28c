import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { compress, decompress, verify } from '../zfile.js';
import { parse, removeOutputsOnSignals, usageError, zfileFlags, type Command } from './run.js';

export const zfileCommand: Command = {
  name: 'overlaybd-zfile',
  summary: 'compress, decompress or verify a ZFile',
  usage: `usage: overlaybd-zfile [-t] [-f] [--algorithm lz4|zstd] [--bs KB] SRC [DST]
       overlaybd-zfile -x [-f] SRC DST
       overlaybd-zfile --verify SRC
  -t            wrap the output in a tar (pax header + overlaybd.commit)
  -x            decompress
      --verify  check every block's CRC and that it decompresses
  -f            replace an existing output
With one path (and no -x/--verify), the source is read from stdin and the path is the output.`,
  async main(argv) {
    const { values: v, positionals: p } = parse(argv, {
      t: { type: 'boolean', short: 't' },
      x: { type: 'boolean', short: 'x' },
      verify: { type: 'boolean' },
      f: { type: 'boolean', short: 'f' },
      algorithm: { type: 'string' },
      bs: { type: 'string' },
      verbose: { type: 'boolean' },
    });
    if (v.verify) {
      if (p.length !== 1) throw usageError('--verify takes one SRC');
      await verify(p[0]!);
      return;
    }
    // Outputs are written as temporaries; a signal must not leave one behind.
    removeOutputsOnSignals();
    if (v.x) {
      if (p.length !== 2) throw usageError('-x takes SRC DST');
      await decompress(p[0]!, p[1]!, { force: v.f ?? false });
      return;
    }
    const opts = { ...zfileFlags(v), tar: v.t ?? false, force: v.f ?? false };
    if (p.length === 2) {
      await compress(p[0]!, p[1]!, opts);
      return;
    }
    if (p.length !== 1) throw usageError(`expected SRC [DST], got ${p.length} arguments`);
    // Source on stdin: ZFile compression reads its source by offset, so stage it.
    const staged = path.join(path.dirname(path.resolve(p[0]!)), `.${path.basename(p[0]!)}.stdin-${process.pid}`);
    // The signal handler exits the process, so no finally runs: remove on exit too.
    const unstage = () => fs.rmSync(staged, { force: true });
    process.once('exit', unstage);
    try {
      await pipeline(process.stdin, fs.createWriteStream(staged, { flags: 'wx' }));
      await compress(staged, p[0]!, opts);
    } finally {
      process.off('exit', unstage);
      unstage();
    }
  },
};
