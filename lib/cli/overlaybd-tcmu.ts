#!/usr/bin/env node
/** `overlaybd-tcmu [GLOBAL_CONFIG]`: the device service in the foreground, as upstream's (argv[1] is overlaybd.json). */
import { runCli, usageError } from './run.js';
import { serveForeground } from './serve.js';

runCli(
  'overlaybd-tcmu',
  'usage: overlaybd-tcmu [GLOBAL_CONFIG]   (default /etc/overlaybd/overlaybd.json when it exists)\n' +
    'Logs go to stderr and to the config\'s log file (default /var/log/overlaybd.log).',
  async (argv) => {
    if (argv.length > 1) throw usageError('expected at most one GLOBAL_CONFIG argument');
    await serveForeground(argv[0] !== undefined ? { global: argv[0] } : {});
  },
);
