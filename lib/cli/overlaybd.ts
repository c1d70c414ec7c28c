#!/usr/bin/env node
/** `overlaybd <command>`: every tool under one name. */
import { applyCommand } from './apply.js';
import { commitCommand } from './commit.js';
import { convertorCommand } from './convertor-command.js';
import { createCommand } from './create.js';
import { dumpCommand } from './dump.js';
import { inspectCommand } from './inspect.js';
import { prefetchCommand } from './prefetch.js';
import { resizeCommand } from './resize.js';
import { rpullCommand } from './rpull.js';
import { serveCommand } from './serve.js';
import { attachCommand, detachCommand, listCommand, snapshotCommand } from './device.js';
import { runCli, usageError, type Command } from './run.js';
import { zfileCommand } from './zfile.js';

const commands: Record<string, Command> = {
  dump: dumpCommand,
  prefetch: prefetchCommand,
  serve: serveCommand,
  attach: attachCommand,
  detach: detachCommand,
  list: listCommand,
  snapshot: snapshotCommand,
  inspect: inspectCommand,
  create: createCommand,
  commit: commitCommand,
  apply: applyCommand,
  resize: resizeCommand,
  zfile: zfileCommand,
  convert: convertorCommand,
  rpull: rpullCommand,
};

const usage = `usage: overlaybd <command> [args]   (overlaybd <command> --help for its options)
${Object.entries(commands)
  .map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`)
  .join('\n')}`;

const sub = process.argv[2];
const cmd = sub ? commands[sub] : undefined;
if (cmd) {
  process.argv.splice(2, 1);
  runCli(`overlaybd ${sub}`, cmd.usage, cmd.main);
} else {
  runCli('overlaybd', usage, async () => {
    throw usageError(sub ? `unknown command '${sub}'` : 'a command is required');
  });
}
