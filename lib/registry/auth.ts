/**
 * Registry authentication: the `WWW-Authenticate` challenge (Basic or
 * Bearer), token requests to the realm, and a per-scope token cache.
 */
import { OverlaybdError } from '../errors.js';
import type { CredentialProvider, Credentials } from './credentials.js';
import { silentLogger, type Logger } from '../log.js';
import { RetryableError, parseRetryAfter, withRetry, type RetryPolicy } from './retry.js';
import { isConnectionError, readBody, type HttpResponse, type Transport } from './transport.js';

export interface Challenge {
  scheme: string; // lower-case: 'basic', 'bearer'
  params: Record<string, string>;
}

/** Parses one or more `WWW-Authenticate` values into challenges. */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const v of values) {
    let i = 0;
    const s = v;
    let current: Challenge | undefined;
    const skipWs = () => {
      while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
    };
    while (i < s.length) {
      skipWs();
      if (s[i] === ',') {
        i++;
        continue;
      }
      const tokStart = i;
      while (i < s.length && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(s[i]!)) i++;
      const tok = s.slice(tokStart, i);
      if (tok.length === 0) {
        i++;
        continue;
      }
      skipWs();
      if (s[i] === '=' && current) {
        i++;
        skipWs();
        let val = '';
        if (s[i] === '"') {
          i++;
          while (i < s.length && s[i] !== '"') {
            if (s[i] === '\\' && i + 1 < s.length) i++;
            val += s[i];
            i++;
          }
          i++;
        } else {
          const vs = i;
          while (i < s.length && s[i] !== ',') i++;
          val = s.slice(vs, i).trim();
        }
        current.params[tok.toLowerCase()] = val;
      } else {
        current = { scheme: tok.toLowerCase(), params: {} };
        out.push(current);
      }
    }
  }
  return out;
}

/** `repository:<repo>:<actions>` scopes, merged so that each resource appears once with sorted actions. */
export function normaliseScopes(scopes: Iterable<string>): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const scope of scopes) {
    for (const one of scope.split(' ')) {
      if (one.length === 0) continue;
      const c = one.lastIndexOf(':');
      if (c < 0) {
        byResource.set(one, byResource.get(one) ?? new Set());
        continue;
      }
      const res = one.slice(0, c);
      const set = byResource.get(res) ?? new Set<string>();
      for (const a of one.slice(c + 1).split(',')) if (a) set.add(a);
      byResource.set(res, set);
    }
  }
  return [...byResource.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([res, acts]) => (acts.size ? `${res}:${[...acts].sort().join(',')}` : res));
}

export function repoScope(repository: string, ...actions: ('pull' | 'push' | '*')[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

interface HostAuth {
  scheme: 'basic' | 'bearer';
  realm?: string;
  service?: string;
}

/** `p`, or a rejection with the signal's reason as soon as it aborts. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function basicHeader(c: Credentials): string {
  return 'Basic ' + Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64');
}

export interface AuthorizerOptions {
  transport: Transport;
  credentials: CredentialProvider;
  retry: RetryPolicy;
  logger?: Logger;
  /** Seconds taken off a token's lifetime so it is renewed before it expires (default 10). */
  expiryMarginSeconds?: number;
}

export class Authorizer {
  private readonly transport: Transport;
  private readonly credentials: CredentialProvider;
  private readonly logger: Logger;
  private readonly retry: RetryPolicy;
  private readonly margin: number;
  private readonly hosts = new Map<string, HostAuth>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();
  /** Number of token requests made (for tests and stats). */
  tokenRequests = 0;

  constructor(o: AuthorizerOptions) {
    this.transport = o.transport;
    this.credentials = o.credentials;
    this.logger = o.logger ?? silentLogger;
    this.retry = o.retry;
    this.margin = o.expiryMarginSeconds ?? 10;
  }

  /** The Authorization header for a request to `registry` needing `scopes`, if the host's scheme is known. */
  async header(registry: string, scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const h = this.hosts.get(registry);
    if (!h) return undefined;
    if (h.scheme === 'basic') {
      const c = await this.credentials(registry);
      return c && c.identityToken === undefined ? basicHeader(c) : undefined;
    }
    const t = await this.token(registry, h, scopes, signal);
    return `Bearer ${t.token}`;
  }

  /**
   * Learns from a 401: whether another try may help, and with which scopes
   * (ours merged with the challenge's).
   * `sent` is the Authorization header the failed request carried.
   */
  async onUnauthorized(
    registry: string,
    wwwAuthenticate: string | string[] | undefined,
    scopes: string[],
    sent: string | undefined,
  ): Promise<{ retry: boolean; insufficientScope: boolean; scopes: string[] }> {
    const challenges = parseChallenges(wwwAuthenticate);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer) {
      const realm = bearer.params.realm;
      if (!realm) return { retry: false, insufficientScope: false, scopes };
      const merged = normaliseScopes([...scopes, ...(bearer.params.scope ? [bearer.params.scope] : [])]);
      const insufficientScope = bearer.params.error === 'insufficient_scope';
      const host: HostAuth = { scheme: 'bearer', realm, ...(bearer.params.service !== undefined ? { service: bearer.params.service } : {}) };
      this.hosts.set(registry, host);
      if (sent?.startsWith('Bearer ')) {
        // A token that had every scope asked for and still lacks access will
        // not get it from a new token: stop. Otherwise (expired, revoked,
        // or the registry wants more scopes) drop it and fetch a fresh one;
        // the caller bounds how often this may happen per request.
        const asked = normaliseScopes(scopes);
        if (insufficientScope && merged.join(' ') === asked.join(' ')) {
          return { retry: false, insufficientScope, scopes: merged };
        }
        this.tokens.delete(this.cacheKey(host, merged));
        this.tokens.delete(this.cacheKey(host, asked));
      }
      return { retry: true, insufficientScope, scopes: merged };
    }
    if (basic) {
      this.hosts.set(registry, { scheme: 'basic' });
      const c = await this.credentials(registry);
      const retry = c !== undefined && sent === undefined;
      return { retry, insufficientScope: false, scopes };
    }
    return { retry: false, insufficientScope: false, scopes };
  }

  /** Whether credentials are known for a registry. */
  async hasCredentials(registry: string): Promise<boolean> {
    return (await this.credentials(registry)) !== undefined;
  }

  private cacheKey(h: HostAuth, scopes: string[]): string {
    return `${h.realm ?? ''}|${h.service ?? ''}|${normaliseScopes(scopes).join(' ')}`;
  }

  /**
   * A cached token, or one fetch shared by every caller that needs the same
   * scopes. A caller's signal releases that caller only: the fetch goes on
   * for the others (bounded by the retry policy) and fills the cache.
   */
  private async token(registry: string, h: HostAuth, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    const norm = normaliseScopes(scopes);
    const key = this.cacheKey(h, norm);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetchToken(registry, h, norm)
        .then((t) => {
          this.tokens.set(key, t);
          return t;
        })
        .finally(() => this.inflight.delete(key));
      p.catch(() => {});
      this.inflight.set(key, p);
    }
    return signal ? untilAborted(p, signal) : p;
  }

  private async fetchToken(registry: string, h: HostAuth, scopes: string[]): Promise<CachedToken> {
    let url: URL;
    try {
      url = new URL(h.realm!);
    } catch {
      throw new OverlaybdError('REGISTRY_ERROR', `registry ${registry}: bad token realm "${h.realm}" in WWW-Authenticate`);
    }
    const creds = await this.credentials(registry);
    const headers: Record<string, string> = { Accept: 'application/json' };
    let body: Buffer | undefined;
    if (creds?.identityToken !== undefined) {
      // An identity token is an OAuth2 refresh token: POST it as a form (as docker does).
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'overlaybd' });
      if (h.service) form.set('service', h.service);
      if (scopes.length > 0) form.set('scope', scopes.join(' '));
      body = Buffer.from(form.toString());
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
    } else {
      if (h.service) url.searchParams.set('service', h.service);
      for (const s of scopes) url.searchParams.append('scope', s);
      if (creds) headers.Authorization = basicHeader(creds);
    }
    const who = creds?.identityToken !== undefined ? ' for the identity token' : creds ? ` for user "${creds.username}"` : '';
    const what = `token request ${url.origin}${url.pathname} for ${registry} (scope ${scopes.join(' ') || 'none'})`;
    return withRetry(
      this.retry,
      async (n) => {
        this.tokenRequests++;
        let res;
        try {
          res = await this.transport.request({ method: body ? 'POST' : 'GET', url, headers, ...(body ? { body } : {}) });
        } catch (e) {
          const err = new OverlaybdError('REGISTRY_UNREACHABLE', `${what}: ${(e as Error).message}`, { cause: e });
          throw isConnectionError(e) ? new RetryableError(err) : err;
        }
        if (res.status === 200) return this.parseToken(res, what, registry, scopes);
        const status = res.status;
        const text = (await readBody(res, 64 * 1024).catch(() => Buffer.alloc(0))).toString('utf8').slice(0, 300);
        if (status === 401) {
          throw new OverlaybdError('REGISTRY_UNAUTHORIZED', `${what}: 401 unauthorized${who || ' (no credentials)'}${text ? `: ${text}` : ''}`);
        }
        if (status === 403) {
          throw new OverlaybdError('REGISTRY_DENIED', `${what}: 403 denied${who}${text ? `: ${text}` : ''}`);
        }
        if (status === 429 || status >= 500) {
          const err = new OverlaybdError(
            status === 429 ? 'REGISTRY_RATE_LIMITED' : 'REGISTRY_ERROR',
            `${what}: HTTP ${status} after ${n} attempts${text ? `: ${text}` : ''}`,
          );
          throw new RetryableError(err, parseRetryAfter(res.headers['retry-after']));
        }
        throw new OverlaybdError('REGISTRY_ERROR', `${what}: HTTP ${status}${text ? `: ${text}` : ''}`);
      },
      { onRetry: ({ attempt, reason }) => this.logger.debug('retry', { what, attempt, reason }) },
    );
  }

  private async parseToken(res: HttpResponse, what: string, registry: string, scopes: string[]): Promise<CachedToken> {
    const body = await readBody(res, 1024 * 1024);
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      json = JSON.parse(body.toString('utf8')) as typeof json;
    } catch {
      throw new OverlaybdError('REGISTRY_ERROR', `${what}: response is not JSON`);
    }
    const token = typeof json.token === 'string' && json.token ? json.token : json.access_token;
    if (typeof token !== 'string' || token.length === 0) {
      throw new OverlaybdError('REGISTRY_ERROR', `${what}: response has neither "token" nor "access_token"`);
    }
    const expiresIn = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : 60;
    let issued = Date.now();
    if (typeof json.issued_at === 'string') {
      const t = Date.parse(json.issued_at);
      // Trust issued_at only when it is near our clock.
      if (!Number.isNaN(t) && Math.abs(t - issued) < 5 * 60_000) issued = Math.min(issued, t);
    }
    const lifetime = Math.max(expiresIn - Math.min(this.margin, expiresIn / 2), 1);
    this.logger.debug('auth.token', { registry, scopes, expiresIn });
    return { token, expiresAt: issued + lifetime * 1000 };
  }
}
