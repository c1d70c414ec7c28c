import { inspectLayer } from '../layer.js';
import { parse, usageError, type Command } from './run.js';

export const inspectCommand: Command = {
  name: 'overlaybd inspect',
  summary: "print a layer's tar wrapper, ZFile and LSMT header, trailer and index as JSON",
  usage: `usage: overlaybd inspect FILE
FILE: a committed, sealed or compressed layer, an RW data file or an RW index file.`,
  async main(argv) {
    const { positionals } = parse(argv, {});
    if (positionals.length !== 1) throw usageError('expected one FILE argument');
    process.stdout.write(JSON.stringify(await inspectLayer(positionals[0]!), null, 1) + '\n');
  },
};
