/**
 * Image references: `[host[:port]/]path[:tag][@digest]`, with Docker Hub
 * normalisation (`busybox` -> `docker.io/library/busybox:latest`).
 */
import { OverlaybdError } from '../errors.js';

export const DOCKER_HUB_DOMAIN = 'docker.io';
/** The host that serves Docker Hub's registry API. */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
/** The key that Docker's config.json uses for Docker Hub credentials. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';

export interface Reference {
  /** Registry host as written, normalised (`docker.io` for Docker Hub), with `:port` if any. */
  readonly registry: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]{32,})$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;

function bad(ref: string, why: string): OverlaybdError {
  return new OverlaybdError('CONFIG_INVALID', `invalid image reference "${ref}": ${why}`);
}

/** True when the first path element names a registry host (has a dot or a port, or is localhost). */
function looksLikeHost(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[');
}

export function validateDigest(digest: string, what = 'digest'): string {
  const m = DIGEST.exec(digest);
  if (!m) throw new OverlaybdError('CONFIG_INVALID', `invalid ${what} "${digest}": want <algorithm>:<hex>`);
  const [, algo, hex] = m;
  if (algo === 'sha256' && !/^[a-f0-9]{64}$/.test(hex!)) {
    throw new OverlaybdError('CONFIG_INVALID', `invalid ${what} "${digest}": sha256 needs 64 lowercase hex digits`);
  }
  if (algo === 'sha512' && !/^[a-f0-9]{128}$/.test(hex!)) {
    throw new OverlaybdError('CONFIG_INVALID', `invalid ${what} "${digest}": sha512 needs 128 lowercase hex digits`);
  }
  return digest;
}

export function validateTag(tag: string): string {
  if (!TAG.test(tag)) {
    throw new OverlaybdError('CONFIG_INVALID', `invalid tag "${tag}": want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`);
  }
  return tag;
}

export function validateRepository(repository: string): string {
  if (repository.length === 0 || repository.length > 255) {
    throw new OverlaybdError('CONFIG_INVALID', `invalid repository "${repository}": length must be 1..255`);
  }
  for (const part of repository.split('/')) {
    if (!COMPONENT.test(part)) {
      throw new OverlaybdError(
        'CONFIG_INVALID',
        `invalid repository "${repository}": path component "${part}" must be lowercase letters, digits and separators`,
      );
    }
  }
  return repository;
}

/**
 * Parses an image reference. With `defaultTag` (default `latest`), a
 * reference with neither tag nor digest gets that tag; pass `null` to leave it
 * bare (for repository-only references such as the convertor's `-r`).
 */
export function parseReference(ref: string, defaultTag: string | null = 'latest'): Reference {
  if (ref.length === 0) throw bad(ref, 'empty');
  if (ref !== ref.trim()) throw bad(ref, 'leading or trailing whitespace');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      validateDigest(digest);
    } catch {
      throw bad(ref, `bad digest "${digest}"`);
    }
  }
  let registry = DOCKER_HUB_DOMAIN;
  const slash = rest.indexOf('/');
  if (slash >= 0 && looksLikeHost(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    rest = rest.slice(slash + 1);
    if (!HOST.test(registry)) throw bad(ref, `bad registry host "${registry}"`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(ref, `bad tag "${tag}"`);
  }
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API_HOST) registry = DOCKER_HUB_DOMAIN;
  if (registry === DOCKER_HUB_DOMAIN && !rest.includes('/')) rest = `library/${rest}`;
  try {
    validateRepository(rest);
  } catch (e) {
    throw bad(ref, (e as Error).message);
  }
  if (tag === undefined && digest === undefined && defaultTag !== null) tag = defaultTag;
  return { registry, repository: rest, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** `host/repo[:tag][@digest]`. */
export function formatReference(r: Reference): string {
  return `${r.registry}/${r.repository}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** The host:port that serves the registry API for a normalised registry name. */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB_DOMAIN ? DOCKER_HUB_API_HOST : registry;
}

/** The host name without port or brackets (what `overlaybd_layers.host` stores is the registry name). */
export function hostName(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(1, registry.indexOf(']'));
  const c = registry.lastIndexOf(':');
  return c >= 0 ? registry.slice(0, c) : registry;
}
