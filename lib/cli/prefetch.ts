import { openImageConfig } from '../service/open-config.js';
import { createLogger } from '../log.js';
import { parse, serviceFlags, usageError, type Command } from './run.js';

export const prefetchCommand: Command = {
  name: 'overlaybd prefetch',
  summary: "warm the cache of a remote image from its config's trace or file list",
  usage: `usage: overlaybd prefetch [--global overlaybd.json] CONFIG.json
Reads what the config's recordTracePath names (a binary trace, or a text list of paths,
a trailing / or * meaning a whole tree) or its acceleration layer's trace, through the
cache of the global config, then exits. Prints {"reads","bytes","errors"} as JSON.`,
  async main(argv) {
    const { values, positionals } = parse(argv, { global: { type: 'string' } });
    if (positionals.length !== 1) throw usageError('expected one CONFIG argument');
    const log = createLogger();
    const img = await openImageConfig(positionals[0]!, { ...serviceFlags(values), autoPrefetch: false, logger: log });
    try {
      const stats = await img.prefetch();
      log.info('prefetch.done', { ...stats });
      process.stdout.write(JSON.stringify(stats) + '\n');
      if (stats.errors > 0) process.exitCode = 1;
    } finally {
      await img.close();
    }
  },
};
