/**
 * The registry flags ctr's image commands share (`--plain-http`, `-k`,
 * `-u`, `--refresh`, `--hosts-dir`, `--tlscacert`, `--tlscert`/`--tlskey`,
 * `--http-dump`): their parse options, their
 * usage lines and the client they make, for rpull and record-trace alike.
 */
import { createLogger } from '../log.js';
import { RegistryClient } from '../registry/client.js';
import { usageError } from './run.js';

export const REGISTRY_OPTIONS = {
  'plain-http': { type: 'boolean' },
  'skip-verify': { type: 'boolean', short: 'k' },
  user: { type: 'string', short: 'u' },
  refresh: { type: 'string' },
  'hosts-dir': { type: 'string' },
  tlscacert: { type: 'string', multiple: true },
  tlscert: { type: 'string' },
  tlskey: { type: 'string' },
  'http-dump': { type: 'boolean' },
} as const;

/** Those of the flags that take a value (for commands that find their first positional themselves). */
export const REGISTRY_VALUE_FLAGS = ['-u', '--user', '--refresh', '--hosts-dir', '--tlscacert', '--tlscert', '--tlskey'];

/** Usage lines with descriptions from column `column` (as the command's others), `what` saying what the registry is for. */
export function registryUsage(column: number, what = ''): string {
  const lines: [string, string][] = [
    ['      --plain-http', `plain HTTP to the registry${what}`],
    ['  -k, --skip-verify', `skip TLS certificate verification${what}`],
    ['  -u, --user USER[:PASS]', "registry credentials (default: Docker's config.json)"],
    ['      --refresh TOKEN', 'OAuth2 refresh token for the token server (without -u)'],
    ['      --hosts-dir DIR', "containerd's hosts directory: <registry>/hosts.toml mirrors and TLS"],
    ['      --tlscacert FILE', 'extra CA file (repeatable)'],
    ['      --tlscert FILE', 'client certificate (with --tlskey)'],
    ['      --tlskey FILE', 'client key'],
    ['      --http-dump', 'log every registry request and response, headers included (credentials redacted)'],
  ];
  return lines.map(([flag, text]) => flag.padEnd(column) + text).join('\n');
}

export interface RegistryFlagValues {
  'plain-http'?: boolean;
  'skip-verify'?: boolean;
  user?: string;
  refresh?: string;
  'hosts-dir'?: string;
  tlscacert?: string[];
  tlscert?: string;
  tlskey?: string;
  'http-dump'?: boolean;
}

/**
 * The client the flags describe; a certificate without its key (or the
 * reverse) is a usage error. `--http-dump` records go to `dump` (stderr).
 */
export function registryClientFrom(v: RegistryFlagValues, dump: NodeJS.WritableStream = process.stderr): RegistryClient {
  if ((v.tlscert === undefined) !== (v.tlskey === undefined)) throw usageError('--tlscert and --tlskey go together');
  return new RegistryClient({
    transport: {
      plainHttp: v['plain-http'] ?? false,
      insecure: v['skip-verify'] ?? false,
      caFiles: v.tlscacert ?? [],
      clientCerts: v.tlscert !== undefined ? [{ cert: v.tlscert, key: v.tlskey! }] : [],
    },
    credentials: v.user !== undefined ? { userPass: v.user } : v.refresh !== undefined ? { refreshToken: v.refresh } : {},
    ...(v['hosts-dir'] !== undefined ? { hostsDir: v['hosts-dir'] } : {}),
    ...(v['http-dump'] ? { logger: createLogger({ level: 'debug', stream: dump }) } : {}),
  });
}
