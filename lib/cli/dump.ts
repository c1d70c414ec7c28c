import { loadImageConfig } from '../config.js';
import { openImage } from '../image.js';
import { isOverlaybdError } from '../errors.js';
import { parse, stdoutClosed, usageError, type Command } from './run.js';

export const dumpCommand: Command = {
  name: 'overlaybd dump',
  summary: 'write the whole virtual device of a config.v1.json to stdout',
  usage: `usage: overlaybd dump [--io-engine psync|io_uring] CONFIG.json > device.img
CONFIG is a config.v1.json: lowers[].file bottom first, optional upper.data/upper.index.
A regular file gets the device sparsely at its current offset (>> appends it).`,
  async main(argv) {
    const { values, positionals } = parse(argv, { 'io-engine': { type: 'string' } });
    if (positionals.length !== 1) throw usageError('expected one CONFIG argument');
    const engine = values['io-engine'];
    if (engine !== undefined && engine !== 'psync' && engine !== 'io_uring')
      throw usageError(`--io-engine must be psync or io_uring, got '${engine}'`);
    const { spec } = await loadImageConfig(positionals[0]!);
    const img = await openImage({ ...spec, ...(engine ? { ioEngine: engine } : {}) });
    try {
      await img.dump(1);
    } catch (e) {
      // The dump writes only to stdout: EPIPE means its reader is gone.
      if (isOverlaybdError(e) && e.code === 'EPIPE') stdoutClosed();
      throw e;
    } finally {
      await img.close();
    }
  },
};
