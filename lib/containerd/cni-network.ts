/**
 * The network of a recorded container unless --disable-network-isolation,
 * as upstream's record-trace sets it up: a named network namespace
 * (`ip netns add`) joined to the CNI bridge `r-trace-br0` (10.99.0.0/16 and
 * 2001:4860:4860::/64, host-local IPAM, ipMasq, promiscMode) plus loopback,
 * run with the plugins of --cni-plugin-dir (each plugin is an executable
 * taking its config on stdin and the command in CNI_*). Configs say CNI
 * 0.4.0, which plugins from 0.8 to today's 1.x all take.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { OverlaybdError } from '../errors.js';

const execFileP = promisify(execFile);

/** Upstream's default plugin directory; Debian's containernetworking-plugins puts them in the second. */
export const DEFAULT_CNI_PLUGIN_DIR = '/opt/cni/bin/';
const DEBIAN_CNI_PLUGIN_DIR = '/usr/lib/cni';

const TRACE_BRIDGE = 'r-trace-br0';
const CNI_VERSION = '0.4.0';
/** A plugin that has not answered by then has hung. */
const PLUGIN_TIMEOUT_MS = 60_000;

const LOOPBACK = { cniVersion: CNI_VERSION, name: 'cni-loopback', type: 'loopback' };
const BRIDGE = {
  cniVersion: CNI_VERSION,
  name: TRACE_BRIDGE,
  type: 'bridge',
  bridge: TRACE_BRIDGE,
  isGateway: true,
  ipMasq: true,
  promiscMode: true,
  ipam: {
    type: 'host-local',
    ranges: [[{ subnet: '10.99.0.0/16' }], [{ subnet: '2001:4860:4860::/64' }]],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
  },
};

/** The attachments, in the order they are added (removed in reverse). */
const ATTACHMENTS = [
  { ifname: 'lo', config: LOOPBACK },
  { ifname: 'eth0', config: BRIDGE },
];

export interface TraceNetwork {
  /** The namespace's path, for the runtime spec. */
  netns: string;
  /** Removes the attachments and the namespace (the bridge stays, as upstream's does). */
  release(): Promise<void>;
}

/** The plugin directory: the given one, else upstream's default, else Debian's when only it has the plugins. */
export function cniPluginDir(given: string | undefined): string {
  if (given !== undefined) return given;
  const has = (dir: string) => fs.existsSync(path.join(dir, 'bridge'));
  return !has(DEFAULT_CNI_PLUGIN_DIR) && has(DEBIAN_CNI_PLUGIN_DIR) ? DEBIAN_CNI_PLUGIN_DIR : DEFAULT_CNI_PLUGIN_DIR;
}

/** Runs one plugin; resolves with its stdout, or fails with the error it reported. */
async function runPlugin(dir: string, config: { type: string; name: string }, env: Record<string, string>): Promise<string> {
  const bin = path.join(dir, config.type);
  if (!fs.existsSync(bin)) {
    throw new OverlaybdError('ENOENT', `CNI plugin ${config.type} not found in ${dir} (install containernetworking-plugins, give --cni-plugin-dir, or --disable-network-isolation)`);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [], { env: { ...process.env, ...env, CNI_PATH: dir }, stdio: ['pipe', 'pipe', 'pipe'], timeout: PLUGIN_TIMEOUT_MS });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', (e) => reject(new OverlaybdError('EIO', `CNI plugin ${bin}: ${e.message}`, { cause: e })));
    child.once('close', (code, signal) => {
      if (code === 0) return resolve(out);
      // A failing plugin prints {"code", "msg", "details"} on stdout.
      let why = err.trim() || out.trim();
      try {
        const r = JSON.parse(out) as { msg?: string; details?: string };
        if (r.msg) why = r.details ? `${r.msg}: ${r.details}` : r.msg;
      } catch {
        // not JSON: keep the raw output
      }
      reject(new OverlaybdError('EIO', `CNI ${env.CNI_COMMAND} of ${config.name} (${config.type}) failed${signal ? ` (${signal})` : ` (exit ${code})`}: ${why}`));
    });
    child.stdin.on('error', () => {}); // a plugin that exits without reading its config
    child.stdin.end(JSON.stringify(config));
  });
}

/** Creates the namespace and attaches it; on a failure part way, what was made is removed. */
export async function setupTraceNetwork(containerId: string, pluginDir: string): Promise<TraceNetwork> {
  const name = `obd-trace-${randomBytes(4).toString('hex')}`;
  const netns = `/var/run/netns/${name}`;
  try {
    await execFileP('ip', ['netns', 'add', name]);
  } catch (e) {
    throw new OverlaybdError('EIO', `ip netns add ${name}: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`, { cause: e });
  }
  const added: (typeof ATTACHMENTS)[number][] = [];
  const env = (command: string, ifname: string) => ({ CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: ifname });
  const release = async () => {
    const errors: string[] = [];
    for (const a of [...added].reverse()) {
      await runPlugin(pluginDir, a.config, env('DEL', a.ifname)).catch((e: unknown) => errors.push((e as Error).message));
    }
    await execFileP('ip', ['netns', 'delete', name]).catch((e: unknown) => errors.push(`ip netns delete ${name}: ${(e as Error).message}`));
    if (errors.length > 0) throw new OverlaybdError('EIO', `removing the trace network: ${errors.join('; ')}`);
  };
  try {
    for (const a of ATTACHMENTS) {
      added.push(a);
      await runPlugin(pluginDir, a.config, env('ADD', a.ifname));
    }
  } catch (e) {
    await release().catch(() => {});
    throw e;
  }
  return { netns, release };
}
