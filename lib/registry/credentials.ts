/**
 * Registry credentials: an explicit `user:pass` (the convertor's `-u`) or
 * Docker's config.json (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`)
 * with its credential helpers, in docker's order: `credHelpers[host]`, then
 * `credsStore`, then `auths`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { parseWith } from '../config.js';
import { OverlaybdError } from '../errors.js';
import { runCredentialHelper } from './cred-helper.js';
import { DOCKER_HUB_API_HOST, DOCKER_HUB_AUTH_KEY, DOCKER_HUB_DOMAIN } from './reference.js';

export interface Credentials {
  readonly username: string;
  readonly password: string;
  /** An OAuth2 refresh token (docker's identity token), traded at the token realm for access tokens. */
  readonly identityToken?: string;
}

/** Returns the credentials for a registry host (`host[:port]`), if any. */
export type CredentialProvider = (registry: string) => Credentials | undefined | Promise<Credentials | undefined>;

/** Parses `user[:password]`, split at the first colon (as upstream's `-u`). */
export function parseUserPass(s: string): Credentials {
  if (s.length === 0) throw new OverlaybdError('CONFIG_INVALID', 'invalid credentials "-u": empty; want user[:password]');
  const i = s.indexOf(':');
  const username = i >= 0 ? s.slice(0, i) : s;
  const password = i >= 0 ? s.slice(i + 1) : '';
  if (username.length === 0) {
    throw new OverlaybdError('CONFIG_INVALID', 'invalid credentials "-u": empty user name; want user[:password]');
  }
  return { username, password };
}

const AuthEntry = z.object({
  auth: z.string().optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  identitytoken: z.string().optional(),
});

const DockerConfig = z.object({
  auths: z.record(z.string(), AuthEntry).optional(),
  credsStore: z.string().optional(),
  credHelpers: z.record(z.string(), z.string()).optional(),
});

/** Normalises a config.json `auths` key (`https://host/v1/`, `host`, ...) to `host[:port]`. */
export function normaliseAuthKey(key: string): string {
  let k = key.trim();
  if (k === DOCKER_HUB_AUTH_KEY) return DOCKER_HUB_DOMAIN;
  k = k.replace(/^[a-z]+:\/\//i, '');
  const slash = k.indexOf('/');
  if (slash >= 0) k = k.slice(0, slash);
  k = k.toLowerCase();
  if (k === 'index.docker.io' || k === DOCKER_HUB_API_HOST || k === 'registry.hub.docker.com') return DOCKER_HUB_DOMAIN;
  return k;
}

function normaliseRegistry(registry: string): string {
  return normaliseAuthKey(registry);
}

/** The default config.json path: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG && env.DOCKER_CONFIG.length > 0 ? env.DOCKER_CONFIG : path.join(os.homedir(), '.docker');
  return path.join(dir, 'config.json');
}

export interface DockerConfigFile {
  /** `auths` by `host[:port]`. */
  auths: Map<string, Credentials>;
  /** The default credential helper (`credsStore`). */
  credsStore?: string;
  /** Credential helpers by `host[:port]` (`credHelpers`). */
  credHelpers: Map<string, string>;
}

/**
 * Reads a Docker config.json. A missing file is an empty config; a malformed
 * one is a CONFIG_INVALID error naming the file and field.
 */
export function readDockerConfig(file: string = dockerConfigPath()): DockerConfigFile {
  const out = new Map<string, Credentials>();
  const credHelpers = new Map<string, string>();
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { auths: out, credHelpers };
    throw new OverlaybdError('CONFIG_INVALID', `cannot read Docker config ${file}: ${(e as Error).message}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new OverlaybdError('CONFIG_INVALID', `Docker config ${file} is not JSON: ${(e as Error).message}`, { cause: e });
  }
  const parsed = parseWith(DockerConfig, json, `Docker config ${file}`);
  for (const [key, entry] of Object.entries(parsed.auths ?? {})) {
    let username = entry.username;
    let password = entry.password;
    if (entry.auth && entry.auth.length > 0) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i < 0) {
        throw new OverlaybdError(
          'CONFIG_INVALID',
          `Docker config ${file}: field auths.${key}.auth does not decode to user:password`,
        );
      }
      username = decoded.slice(0, i);
      password = decoded.slice(i + 1);
    }
    const host = normaliseAuthKey(key);
    // The first entry for a host wins, as an exact key is usually listed once.
    if (out.has(host)) continue;
    if (entry.identitytoken) out.set(host, { username: username ?? '', password: '', identityToken: entry.identitytoken });
    else if (username !== undefined && username.length > 0) out.set(host, { username, password: password ?? '' });
  }
  for (const [key, helper] of Object.entries(parsed.credHelpers ?? {})) credHelpers.set(normaliseAuthKey(key), helper);
  return { auths: out, credHelpers, ...(parsed.credsStore ? { credsStore: parsed.credsStore } : {}) };
}

/** The `auths` of a Docker config.json by host (helpers are not run). */
export function loadDockerConfig(file: string = dockerConfigPath()): Map<string, Credentials> {
  return readDockerConfig(file).auths;
}

/** The server URL docker hands a credential helper: Docker Hub's legacy key, else `host[:port]`. */
function helperServerUrl(host: string): string {
  return host === DOCKER_HUB_DOMAIN ? DOCKER_HUB_AUTH_KEY : host;
}

/** Credentials for a host from a parsed config, running its helper if one applies. */
async function fromConfig(cfg: DockerConfigFile, host: string): Promise<Credentials | undefined> {
  const helper = cfg.credHelpers.get(host) ?? cfg.credsStore;
  // As docker: with a helper for the host, its "not found" means anonymous; auths is not consulted.
  if (helper) return runCredentialHelper(helper, helperServerUrl(host));
  return cfg.auths.get(host);
}

export interface CredentialOptions {
  /** `user[:pass]` for every registry (the convertor's `-u`), or for the registries listed in `hosts`. */
  userPass?: string;
  /** An OAuth2 refresh token for every registry (ctr's `--refresh`); `userPass` wins over it, as in ctr. */
  refreshToken?: string;
  /** Read Docker's config.json (default true); a path to use another file. */
  dockerConfig?: boolean | string;
}

/**
 * Builds a provider: explicit credentials first, then config.json by host.
 * The config file is read once, on the first lookup; a helper's answer is
 * kept per host for the provider's life (a failed run is not kept).
 */
export function credentialProvider(opts: CredentialOptions = {}): CredentialProvider {
  const explicit =
    opts.userPass !== undefined
      ? parseUserPass(opts.userPass)
      : opts.refreshToken !== undefined && opts.refreshToken !== ''
        ? { username: '', password: '', identityToken: opts.refreshToken }
        : undefined;
  let cfg: DockerConfigFile | undefined;
  const byHost = new Map<string, Promise<Credentials | undefined>>();
  return (registry: string) => {
    if (explicit) return explicit;
    if (opts.dockerConfig === false) return undefined;
    cfg ??= readDockerConfig(typeof opts.dockerConfig === 'string' ? opts.dockerConfig : dockerConfigPath());
    const host = normaliseRegistry(registry);
    let p = byHost.get(host);
    if (!p) {
      p = fromConfig(cfg, host);
      byHost.set(host, p);
      p.catch(() => byHost.delete(host));
    }
    return p;
  };
}
