import { createLogger, teeLogger, type Level, type Logger } from '../log.js';
import { LogFile } from '../log-file.js';
import { DeviceService } from '../device/service.js';
import { loadGlobalConfig, logSettings, type GlobalConfig } from '../service/global-config.js';
import { parse, usageError, type Command } from './run.js';

const LEVELS: Level[] = ['debug', 'info', 'warn', 'error'];

/**
 * The service's logs: stderr, and the log file of overlaybd.json's
 * logConfig (legacy logPath, /var/log/overlaybd.log by default) at its
 * level, as upstream's overlaybd-tcmu writes one. OBD_LOG_LEVEL overrides
 * the level. A file that cannot be opened is reported, and stderr goes on.
 */
export function serviceLogger(global: GlobalConfig): { log: Logger; file?: LogFile } {
  const s = logSettings(global);
  const level = (process.env.OBD_LOG_LEVEL as Level | undefined) ?? LEVELS[s.level] ?? 'info';
  const stderr = createLogger({ level });
  let file: LogFile;
  try {
    file = LogFile.open(s.path, { sizeBytes: s.sizeBytes, rotateNum: s.rotateNum });
  } catch (e) {
    stderr.warn('service.log_file_unusable', { path: s.path, error: (e as Error).message });
    return { log: stderr };
  }
  return { log: teeLogger(stderr, createLogger({ level, stream: file, json: true })), file };
}

/** Runs the device service in the foreground until SIGTERM or SIGINT, then detaches every device. */
export async function serveForeground(opts: { global?: string; socket?: string }): Promise<void> {
  const global = await loadGlobalConfig(opts.global);
  const { log, file } = serviceLogger(global);
  try {
    const svc = await DeviceService.start({ ...opts, global, logger: log });
    await new Promise<void>((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        log.info('service.signal', { signal });
        resolve();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    await svc.close();
  } finally {
    file?.close();
  }
}

export const serveCommand: Command = {
  name: 'overlaybd serve',
  summary: 'run the device service in the foreground (as overlaybd-tcmu)',
  usage: `usage: overlaybd serve [--global overlaybd.json] [--socket PATH]
Hosts devices that overlaybd attach asks for, answering on the control socket
(default: the global config's controlSocket, /run/overlaybd/overlaybd.sock).
Logs go to stderr and to the global config's log file (logConfig.logPath, else
logPath: /var/log/overlaybd.log), rotated at logSizeMB, at its logLevel.
SIGTERM or SIGINT detaches every device and stops.`,
  async main(argv) {
    const { values, positionals } = parse(argv, { global: { type: 'string' }, socket: { type: 'string' } });
    if (positionals.length) throw usageError(`unexpected argument '${positionals[0]}'`);
    await serveForeground({
      ...(values.global !== undefined ? { global: values.global } : {}),
      ...(values.socket !== undefined ? { socket: values.socket } : {}),
    });
  },
};
