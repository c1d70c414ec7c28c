import { openImageConfig } from '../service/open-config.js';
import { isOverlaybdError } from '../errors.js';
import { ioEngineFlag, parse, serviceFlags, stdoutClosed, usageError, type Command } from './run.js';

export const dumpCommand: Command = {
  name: 'overlaybd dump',
  summary: 'write the whole virtual device of a config.v1.json to stdout',
  usage: `usage: overlaybd dump [--global overlaybd.json] [--io-engine psync|io_uring] CONFIG.json > device.img
CONFIG is a config.v1.json: lowers bottom first (local files, or repoBlobUrl + digest read on
demand through the cache of the global config), optional upper.data/upper.index.
--global defaults to /etc/overlaybd/overlaybd.json when it exists, else upstream's defaults.
A regular file gets the device sparsely at its current offset (>> appends it).`,
  async main(argv) {
    const { values, positionals } = parse(argv, { 'io-engine': { type: 'string' }, global: { type: 'string' } });
    if (positionals.length !== 1) throw usageError('expected one CONFIG argument');
    const img = await openImageConfig(positionals[0]!, { ...serviceFlags(values), ...ioEngineFlag(values['io-engine']) });
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
