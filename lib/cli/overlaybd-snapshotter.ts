#!/usr/bin/env node
/** `overlaybd-snapshotter [CONFIG | --config CONFIG]`: containerd's overlaybd proxy snapshotter in the foreground. */
import { DEFAULT_CONFIG_PATH, loadSnapshotterConfig } from '../snapshotter/config.js';
import { runSnapshotter } from '../snapshotter/run.js';
import { parse, runCli, usageError } from './run.js';

runCli(
  'overlaybd-snapshotter',
  `usage: overlaybd-snapshotter [CONFIG | --config CONFIG]   (default ${DEFAULT_CONFIG_PATH})`,
  async (argv) => {
    const { values, positionals } = parse(argv, { config: { type: 'string' } });
    if (positionals.length > 1 || (positionals.length && values.config !== undefined)) throw usageError('expected one CONFIG (argument or --config)');
    const config = loadSnapshotterConfig(values.config ?? positionals[0] ?? DEFAULT_CONFIG_PATH);
    const running = await runSnapshotter(config);
    process.on('SIGPIPE', () => {});
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        process.stderr.write(`overlaybd-snapshotter: ${sig}: stopping\n`);
        running.stop().then(resolve, resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  },
);
