#!/usr/bin/env node
/** `overlaybd <command>`: every tool under one name. */
import { runCli, usageError, type Command } from './run.js';

// Each command is imported only when it runs: a start of `overlaybd rpull`
// or `attach` should not load the convertor, ext4 and registry stacks of the
// others (about 0.4 s of a 1.3 s start). --help loads them all for the summaries.
const commands: Record<string, () => Promise<Command>> = {
  dump: async () => (await import('./dump.js')).dumpCommand,
  prefetch: async () => (await import('./prefetch.js')).prefetchCommand,
  serve: async () => (await import('./serve.js')).serveCommand,
  attach: async () => (await import('./device.js')).attachCommand,
  detach: async () => (await import('./device.js')).detachCommand,
  list: async () => (await import('./device.js')).listCommand,
  snapshot: async () => (await import('./device.js')).snapshotCommand,
  inspect: async () => (await import('./inspect.js')).inspectCommand,
  create: async () => (await import('./create.js')).createCommand,
  commit: async () => (await import('./commit.js')).commitCommand,
  apply: async () => (await import('./apply.js')).applyCommand,
  resize: async () => (await import('./resize.js')).resizeCommand,
  zfile: async () => (await import('./zfile.js')).zfileCommand,
  convert: async () => (await import('./convertor-command.js')).convertorCommand,
  rpull: async () => (await import('./rpull.js')).rpullCommand,
  obdconv: async () => (await import('./obdconv.js')).obdconvCommand,
  'record-trace': async () => (await import('./record-trace.js')).recordTraceCommand,
};

async function usage(): Promise<string> {
  const lines = await Promise.all(Object.entries(commands).map(async ([n, load]) => `  ${n.padEnd(10)} ${(await load()).summary}`));
  return `usage: overlaybd <command> [args]   (overlaybd <command> --help for its options)\n${lines.join('\n')}`;
}

// No top-level await: the single-file executables bundle this as CommonJS.
async function main(): Promise<void> {
  const sub = process.argv[2];
  const load = sub !== undefined && Object.hasOwn(commands, sub) ? commands[sub] : undefined;
  if (load) {
    const cmd = await load();
    process.argv.splice(2, 1);
    runCli(`overlaybd ${sub}`, cmd.usage, cmd.main);
  } else {
    runCli('overlaybd', await usage(), async () => {
      throw usageError(sub ? `unknown command '${sub}'` : 'a command is required');
    });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`overlaybd: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
