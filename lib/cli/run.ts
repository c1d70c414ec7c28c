/**
 * Shared CLI plumbing: argument parsing with node:util parseArgs (usage
 * errors name the flag), and one error exit path: `<tool>: <CODE>: message`
 * on stderr, exit 2 for usage errors and 1 for everything else. A closed
 * stdout (a pipe into `head`) ends a tool quietly with 141.
 */
import { constants } from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { OverlaybdError } from '../errors.js';
import { removePendingOutputs } from '../layer.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export function usageError(message: string): OverlaybdError {
  return new OverlaybdError('USAGE', message);
}

export interface Parsed<O extends Options> {
  values: ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>['values'];
  positionals: string[];
}

export function parse<O extends Options>(argv: string[], options: O): Parsed<O> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw usageError((e as Error).message);
  }
}

/** Parses a non-negative integer flag value, naming the flag when it is not one. */
export function intFlag(name: string, value: string | undefined, dflt: number): number {
  if (value === undefined) return dflt;
  if (!/^\d+$/.test(value)) throw usageError(`${name} expects a whole number, got '${value}'`);
  return Number(value);
}

/** The ZFile flags overlaybd-commit and overlaybd-zfile share: --algorithm and --bs (KiB). */
export function zfileFlags(v: { algorithm?: string; bs?: string }): { algorithm: 'lz4' | 'zstd'; blockSize: number } {
  const algorithm = v.algorithm ?? 'lz4';
  if (algorithm !== 'lz4' && algorithm !== 'zstd') throw usageError(`--algorithm must be lz4 or zstd, got '${algorithm}'`);
  const bs = intFlag('--bs', v.bs, 4);
  if (![4, 8, 16, 32, 64].includes(bs)) throw usageError(`--bs must be 4, 8, 16, 32 or 64 (KiB), got ${bs}`);
  return { algorithm, blockSize: bs * 1024 };
}

/** --io-engine psync|io_uring, named in the usage error. */
export function ioEngineFlag(value: string | undefined): { ioEngine?: 'psync' | 'io_uring' } {
  if (value === undefined) return {};
  if (value !== 'psync' && value !== 'io_uring') throw usageError(`--io-engine must be psync or io_uring, got '${value}'`);
  return { ioEngine: value };
}

/** --global PATH: the overlaybd.json of tools that open images (default: /etc/overlaybd/overlaybd.json or upstream's defaults). */
export function serviceFlags(v: { global?: string }): { global?: string } {
  return v.global !== undefined ? { global: v.global } : {};
}

/**
 * For tools that write layer files: on SIGINT, SIGTERM or SIGHUP, delete the
 * outputs still being written and exit with 128 + the signal number, as a
 * shell reports a killed process. (The convertor aborts gracefully instead.)
 */
export function removeOutputsOnSignals(): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      try {
        removePendingOutputs();
      } finally {
        process.exit(128 + constants.signals[sig]);
      }
    });
  }
}

/**
 * Runs `work` with a signal that SIGINT or SIGTERM aborts, so it can undo what
 * is in flight (leases, extraction snapshots); work ended that way reports
 * `<tool>: interrupted by SIG` and sets the exit code 128 + n, as a shell
 * reports a killed process. Other errors pass through.
 */
export async function untilSignal(tool: string, work: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const abort = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    stoppedBy ??= sig;
    abort.abort(new Error(`interrupted by ${sig}`));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await work(abort.signal);
  } catch (e) {
    if (!stoppedBy) throw e;
    process.stderr.write(`${tool}: interrupted by ${stoppedBy}\n`);
    process.exitCode = 128 + constants.signals[stoppedBy];
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * The reader of stdout went away (`| head`): stop at once and quietly, with
 * the status of a tool that SIGPIPE ended (128 + 13), as cat or git do.
 */
export function stdoutClosed(): never {
  process.exit(141);
}

export function runCli(tool: string, usage: string, main: (argv: string[]) => Promise<void>): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') stdoutClosed();
    throw e;
  });
  const argv = process.argv.slice(2);
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(usage.trimEnd() + '\n');
    return;
  }
  main(argv).then(
    // Done: exit once stdout and stderr are flushed, instead of waiting for
    // closed connections to wind down (gRPC and HTTP/2 sessions kept rpull
    // alive 50-130 ms after its last line). A write error (the reader went
    // away) is left to the 'error' handler above.
    () => process.stdout.write('', (err) => err || process.stderr.write('', () => process.exit())),
    (e: unknown) => {
      if (e instanceof OverlaybdError) {
        process.stderr.write(`${tool}: ${e.code}: ${e.message}\n`);
        if (e.code === 'USAGE') process.stderr.write(usage.trimEnd() + '\n');
        process.exitCode = e.code === 'USAGE' ? 2 : 1;
      } else {
        process.stderr.write(`${tool}: ${(e as Error)?.stack ?? String(e)}\n`);
        process.exitCode = 1;
      }
    },
  );
}

/** One tool: the upstream-named bin and the `overlaybd <sub>` subcommand share it. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  main(argv: string[]): Promise<void>;
}

export function runCommand(cmd: Command): void {
  runCli(cmd.name, cmd.usage, cmd.main);
}
