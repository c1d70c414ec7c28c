/**
 * containerd's registry host configuration (`ctr --hosts-dir`, CRI's
 * `config_path`): `<dir>/<host>/hosts.toml` lists the hosts that serve a
 * registry, mirrors first and the `server` last, each with what it may do
 * (pull, resolve, push), its TLS material, extra headers and API root. A
 * host directory without hosts.toml gives the server docker's certs.d files
 * (`*.crt` CAs, `*.cert` + `*.key` client pairs). No directory: the registry
 * itself, as without --hosts-dir. Read the way containerd 1.6 reads it
 * (`remotes/docker/config/hosts.go`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseWith } from '../config.js';
import { OverlaybdError } from '../errors.js';
import { certDirFiles, type TlsFiles } from './cert-dir.js';
import { apiHost } from './reference.js';

export type HostCapability = 'pull' | 'resolve' | 'push';

/** TLS material a host adds to the client's defaults: CA files (added to the system pool and --tlscacert), client pairs, skip_verify. */
export interface HostTls extends TlsFiles {
  skipVerify?: boolean;
}

/** One host of a registry, in the order requests try them. */
export interface RegistryHost {
  scheme: 'http' | 'https';
  /** `host[:port]`. */
  host: string;
  /** The API root: `/v2`, or the URL's own path with override_path. */
  apiRoot: string;
  capabilities: ReadonlySet<HostCapability>;
  tls: HostTls;
  headers: Record<string, string>;
}

const ALL: HostCapability[] = ['pull', 'resolve', 'push'];

const StringOrList = z.union([z.string(), z.array(z.string())]);
/** `client`: a path, paths, or [cert, key] pairs (a pair may hold the path alone). */
const ClientField = z.union([z.string(), z.array(z.union([z.string(), z.array(z.string()).min(1).max(2)]))]);

const HostFields = {
  capabilities: z
    .array(
      z.preprocess(
        (v) => (typeof v === 'string' ? v.toLowerCase() : v),
        z.enum(ALL, { error: (i) => `unknown capability ${JSON.stringify(i.input)} (want pull, resolve or push)` }),
      ),
    )
    .optional(),
  ca: StringOrList.optional(),
  client: ClientField.optional(),
  skip_verify: z.boolean().optional(),
  header: z.record(z.string(), StringOrList).optional(),
  override_path: z.boolean().optional(),
};
const HostSchema = z.object(HostFields);
// Unknown keys are ignored, as containerd's decoder does (newer fields such as dial_timeout).
const HostsFileSchema = z.object({ ...HostFields, server: z.string().optional(), host: z.record(z.string(), HostSchema).optional() });
type HostFile = z.infer<typeof HostSchema>;

/** Where containerd looks for a registry's directory, first match wins: `host_port_`, `host:port`, `_default`. */
export function hostDirCandidates(root: string, registry: string): string[] {
  const colon = registry.lastIndexOf(':');
  const named = colon > 0 && !registry.endsWith(']') ? [`${registry.slice(0, colon)}_${registry.slice(colon + 1)}_`, registry] : [registry];
  return [...named, '_default'].map((d) => path.join(root, d));
}

function absolute(p: string, base: string): string {
  return path.isAbsolute(p) ? p : path.join(base, p);
}

function list(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : typeof v === 'string' ? [v] : v;
}

/** One `[host."url"]` table (or the file's root, for `server`) as a host; paths are relative to the file's directory. */
function hostOf(url: string, f: HostFile, base: string, where: string): RegistryHost {
  let u: URL;
  try {
    u = new URL(/^https?:\/\//i.test(url) ? url : `https://${url}`);
  } catch {
    throw new OverlaybdError('CONFIG_INVALID', `${where}: "${url}" is not a URL`);
  }
  if (u.host === '') throw new OverlaybdError('CONFIG_INVALID', `${where}: "${url}" has no host`);
  let apiRoot = u.pathname.replace(/\/+$/, '');
  if (!f.override_path && !apiRoot.endsWith('/v2')) apiRoot += '/v2';
  const clients = (f.client === undefined ? [] : typeof f.client === 'string' ? [f.client] : f.client).map((c) =>
    typeof c === 'string' ? { cert: absolute(c, base), key: '' } : { cert: absolute(c[0]!, base), key: c[1] ? absolute(c[1], base) : '' },
  );
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(f.header ?? {})) headers[k] = list(v).join(', ');
  return {
    scheme: u.protocol === 'http:' ? 'http' : 'https',
    host: u.host,
    apiRoot,
    capabilities: new Set(f.capabilities ?? ALL),
    tls: { ca: list(f.ca).map((c) => absolute(c, base)), clients, ...(f.skip_verify !== undefined ? { skipVerify: f.skip_verify } : {}) },
    headers,
  };
}

/**
 * The hosts a hosts.toml lists: its `[host]` tables in file order, then
 * `server` (the registry itself when unset). The TOML parser is loaded here,
 * on first use, not by every command that loads the registry client.
 */
export async function parseHostsFile(text: string, file: string, fallback: RegistryHost): Promise<RegistryHost[]> {
  const { parse: parseToml } = await import('smol-toml');
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (e) {
    throw new OverlaybdError('CONFIG_INVALID', `${file}: not valid TOML: ${(e as Error).message}`);
  }
  const f = parseWith(HostsFileSchema, raw, file);
  const base = path.dirname(file);
  const hosts = Object.entries(f.host ?? {}).map(([url, h]) => hostOf(url, h, base, `${file}: host."${url}"`));
  if (f.server !== undefined) hosts.push(hostOf(f.server, f, base, `${file}: server`));
  else {
    // The root's fields still configure the default server.
    const own = hostOf(`${fallback.scheme}://${fallback.host}`, f, base, file);
    hosts.push({ ...own, apiRoot: f.override_path ? fallback.apiRoot : own.apiRoot });
  }
  return hosts;
}

/**
 * The hosts of a registry under `root`, in the order to try them. `fallback`
 * is the registry itself (scheme from --plain-http): used when no directory
 * matches, and as the server when hosts.toml names none.
 */
export async function registryHosts(root: string, registry: string, fallback: RegistryHost): Promise<RegistryHost[]> {
  const dir = hostDirCandidates(root, registry).find((d) => fs.statSync(d, { throwIfNoEntry: false })?.isDirectory());
  if (dir === undefined) return [fallback];
  const file = path.join(dir, 'hosts.toml');
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new OverlaybdError('CONFIG_INVALID', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
    }
  }
  if (text === undefined || text.length === 0) return [{ ...fallback, tls: certDirFiles(dir) }];
  return parseHostsFile(text, file, fallback);
}

/** The registry itself as its only host: Docker Hub's API host, every capability. */
export function defaultHost(registry: string, scheme: 'http' | 'https'): RegistryHost {
  return { scheme, host: apiHost(registry), apiRoot: '/v2', capabilities: new Set(ALL), tls: { ca: [], clients: [] }, headers: {} };
}
