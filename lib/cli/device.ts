/** overlaybd attach / detach / list: clients of a running device service's control socket. */
import path from 'node:path';
import { callService, type DeviceInfo } from '../device/service.js';
import { loadGlobalConfig } from '../service/global-config.js';
import { parse, usageError, type Command } from './run.js';

const socketFlag = { socket: { type: 'string' }, global: { type: 'string' } } as const;

/** --socket, else the controlSocket of --global (or the default global config). */
async function socketOf(v: { socket?: string; global?: string }): Promise<string> {
  if (v.socket !== undefined) return v.socket;
  return (await loadGlobalConfig(v.global)).controlSocket;
}

export const attachCommand: Command = {
  name: 'overlaybd attach',
  summary: 'ask the device service for a block device of a config.v1.json',
  usage: `usage: overlaybd attach [--frontend fuse|tcmu|ublk] [--socket PATH] CONFIG.json
Prints the block device path (/dev/loopN for fuse) on stdout.`,
  async main(argv) {
    const { values, positionals } = parse(argv, { ...socketFlag, frontend: { type: 'string' } });
    if (positionals.length !== 1) throw usageError('expected one CONFIG argument');
    const frontend = values.frontend ?? 'fuse';
    if (!['fuse', 'tcmu', 'ublk'].includes(frontend)) throw usageError(`--frontend must be fuse, tcmu or ublk, got '${frontend}'`);
    const info = (await callService(await socketOf(values), 'POST', '/attach', { config: path.resolve(positionals[0]!), frontend })) as DeviceInfo;
    process.stdout.write(info.path + '\n');
  },
};

export const detachCommand: Command = {
  name: 'overlaybd detach',
  summary: 'detach a device the service attached (by path or id)',
  usage: 'usage: overlaybd detach [--socket PATH] DEVICE   (/dev/loopN or the id from overlaybd list)',
  async main(argv) {
    const { values, positionals } = parse(argv, socketFlag);
    if (positionals.length !== 1) throw usageError('expected one DEVICE argument');
    await callService(await socketOf(values), 'POST', '/detach', { device: positionals[0] });
  },
};

export const listCommand: Command = {
  name: 'overlaybd list',
  summary: "list the device service's devices as JSON",
  usage: 'usage: overlaybd list [--socket PATH]',
  async main(argv) {
    const { values, positionals } = parse(argv, socketFlag);
    if (positionals.length) throw usageError(`unexpected argument '${positionals[0]}'`);
    process.stdout.write(JSON.stringify(await callService(await socketOf(values), 'GET', '/list'), null, 2) + '\n');
  },
};

export const snapshotCommand: Command = {
  name: 'overlaybd snapshot',
  summary: "live snapshot of a device: seal its upper, continue on a new config's upper",
  usage: `usage: overlaybd snapshot [--socket PATH] DEV_ID NEW_CONFIG.json
NEW_CONFIG keeps the device's lowers, adds its upper data file as the newest lower
({"file": <upper data>}) and names a new, empty upper; it replaces the device's config.`,
  async main(argv) {
    const { values, positionals } = parse(argv, socketFlag);
    if (positionals.length !== 2) throw usageError('expected DEV_ID and NEW_CONFIG arguments');
    const [id, config] = positionals as [string, string];
    const q = new URLSearchParams({ dev_id: id, config: path.resolve(config) });
    await callService(await socketOf(values), 'GET', `/snapshot?${q}`);
  },
};
