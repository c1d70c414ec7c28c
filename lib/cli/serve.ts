import { createLogger } from '../log.js';
import { DeviceService } from '../device/service.js';
import { parse, usageError, type Command } from './run.js';

/** Runs the device service in the foreground until SIGTERM or SIGINT, then detaches every device. */
export async function serveForeground(opts: { global?: string; socket?: string }): Promise<void> {
  const log = createLogger();
  const svc = await DeviceService.start({ ...opts, logger: log });
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      log.info('service.signal', { signal });
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await svc.close();
}

export const serveCommand: Command = {
  name: 'overlaybd serve',
  summary: 'run the device service in the foreground (as overlaybd-tcmu)',
  usage: `usage: overlaybd serve [--global overlaybd.json] [--socket PATH]
Hosts devices that overlaybd attach asks for, answering on the control socket
(default: the global config's controlSocket, /run/overlaybd/overlaybd.sock).
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
