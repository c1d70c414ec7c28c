/**
 * The registry client behind an HTTP proxy (Debian's tinyproxy), as upstream's
 * Go convertor is through HTTP_PROXY, HTTPS_PROXY and NO_PROXY. The registry
 * is named PROXIED_HOST, which only the proxy resolves, so a request that
 * works went through it.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOverlaybdError } from '../lib/errors.js';
import { RegistryClient, sha256Digest, type RegistryClientOptions } from '../lib/registry/index.js';
import { ProxyResolver, proxyEnvFrom } from '../lib/registry/proxy.js';
import { PROXIED_HOST, startHttpProxy, type HttpProxy } from './helpers/http-proxy.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { R, remoteGet, TestBlob } from './helpers/remote-get.js';

const fast: RegistryClientOptions['retry'] = { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 50, maxTotalMs: 5_000 };

function blob(n: number): { data: Buffer; digest: string; size: number } {
  const data = crypto.randomBytes(n);
  return { data, digest: sha256Digest(data), size: n };
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { code: isOverlaybdError(e) ? e.code : `not an OverlaybdError: ${String(e)}`, message: (e as Error).message };
  }
  throw new Error('expected a failure');
}

/** Runs fn with these variables set (undefined: unset), then puts them back. */
async function withEnv(vars: Record<string, string | undefined>, fn: () => Promise<void>): Promise<void> {
  const set = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) delete process.env[k];
      else process.env[k] = x;
    }
  };
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  set(vars);
  try {
    await fn();
  } finally {
    set(saved);
  }
}

describe('proxy rules (Go net/http)', () => {
  const r = new ProxyResolver({
    http: 'proxy.corp:3128',
    https: 'https://u:p@secure.corp:8443',
    noProxy: 'example.com, .sub.org,10.0.0.0/8, 192.168.1.5,host:5000,*.wild.net,[::2]:443',
  });
  const via = (u: string) => r.proxyFor(new URL(u))?.href ?? 'direct';

  it('picks the proxy by scheme and adds http:// to a bare host:port', () => {
    expect(via('http://a.b/v2/')).toBe('http://proxy.corp:3128/');
    expect(via('https://a.b/v2/')).toBe('https://u:p@secure.corp:8443/');
  });

  it('never proxies localhost or loopback addresses', () => {
    for (const u of ['http://localhost:5000/', 'http://127.0.0.5/', 'https://[::1]/', 'http://[::ffff:127.0.0.1]/']) expect(via(u), u).toBe('direct');
  });

  it('matches NO_PROXY domains, subdomains, IPs, CIDRs and ports', () => {
    const table: [string, string][] = [
      ['https://example.com/', 'direct'],
      ['https://x.example.com/', 'direct'],
      ['https://sub.org/', 'https://u:p@secure.corp:8443/'],
      ['https://a.sub.org/', 'direct'],
      ['https://wild.net/', 'https://u:p@secure.corp:8443/'],
      ['https://a.wild.net/', 'direct'],
      ['https://10.9.8.7/', 'direct'],
      ['https://11.9.8.7/', 'https://u:p@secure.corp:8443/'],
      ['https://192.168.1.5/', 'direct'],
      ['https://host:5000/', 'direct'],
      ['https://host:5001/', 'https://u:p@secure.corp:8443/'],
      ['https://[::2]/', 'direct'],
      ['https://[::3]/', 'https://u:p@secure.corp:8443/'],
    ];
    for (const [u, want] of table) expect(via(u), u).toBe(want);
    expect(new ProxyResolver({ https: 'p:1', noProxy: '*' }).proxyFor(new URL('https://a.b/'))).toBeUndefined();
    // Entries Go cannot parse are skipped, not fatal.
    const odd = new ProxyResolver({ https: 'p:1', noProxy: '10.0.0.0/99, junk/x, ,10.0.0.0/8' });
    expect(odd.proxyFor(new URL('https://10.1.1.1/'))).toBeUndefined();
    expect(odd.proxyFor(new URL('https://11.1.1.1/'))?.host).toBe('p:1');
  });

  it('reads the upper-case variables first, and ignores HTTP_PROXY under CGI', () => {
    expect(proxyEnvFrom({ HTTP_PROXY: 'a', http_proxy: 'b', https_proxy: 'c', no_proxy: 'd' })).toEqual({ http: 'a', https: 'c', noProxy: 'd' });
    expect(proxyEnvFrom({ HTTP_PROXY: 'a', http_proxy: 'b', REQUEST_METHOD: 'GET' }).http).toBe('b');
    expect(proxyEnvFrom({ HTTPS_PROXY: '', https_proxy: 'c' }).https).toBe('c');
  });

  it('refuses a proxy it cannot use, naming the variable', () => {
    expect(() => new ProxyResolver({ https: 'socks5://x:1080' })).toThrow(/HTTPS_PROXY: proxy scheme socks5 is not supported/);
    expect(() => new ProxyResolver({ http: 'http://' })).toThrow(/HTTP_PROXY: not a proxy URL/);
    expect(() => new RegistryClient({ transport: { proxy: { https: '::bad' } } })).toThrow(/HTTPS_PROXY/);
  });
});

describe('through tinyproxy', () => {
  let proxy: HttpProxy;
  let authProxy: HttpProxy;
  let plain: TestRegistry;
  let tls: TestRegistry;
  const clients: RegistryClient[] = [];
  const client = (o: RegistryClientOptions) => {
    const c = new RegistryClient({ credentials: { dockerConfig: false }, retry: fast, ...o });
    clients.push(c);
    return c;
  };

  // One at a time, so that afterAll stops whatever started when one fails.
  beforeAll(async () => {
    proxy = await startHttpProxy();
    authProxy = await startHttpProxy({ user: 'carol', password: 'pass-w0rd' });
    plain = await startRegistry({ mode: 'plain' });
    tls = await startRegistry({ mode: 'tls' });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all([proxy?.stop(), authProxy?.stop(), plain?.stop(), tls?.stop()]);
  });

  it('sends plain-HTTP requests to the proxy in absolute form', async () => {
    const name = `${PROXIED_HOST}:${plain.port}`;
    const c = client({ transport: { plainHttp: true, proxy: { http: proxy.url } } });
    const b = blob(300_000);
    const repo = { registry: name, repository: 'via/proxy' };
    expect((await c.pushBlob(repo, b, b.data)).status).toBe('uploaded');
    expect((await c.fetchBlobBytes(repo, b)).equals(b.data)).toBe(true);
    expect((await c.fetchBlobRange(repo, b.digest, 1000, 10)).equals(b.data.subarray(1000, 1010))).toBe(true);
    const seen = proxy.requests();
    expect(seen).toContain(`GET http://${name}/v2/via/proxy/blobs/${b.digest}`);
    expect(seen.some((l) => l.startsWith(`POST http://${name}/v2/via/proxy/blobs/uploads/`))).toBe(true);
    // Without the proxy the name does not resolve: the bytes above came through it.
    const direct = client({ transport: { plainHttp: true, proxy: {} } });
    expect((await failure(direct.fetchBlobBytes(repo, b))).message).toMatch(/ENOTFOUND|getaddrinfo/);
  });

  it('tunnels TLS with CONNECT and checks the registry certificate end to end', async () => {
    const name = `${PROXIED_HOST}:${tls.port}`;
    const before = proxy.requests().length;
    const c = client({ transport: { caFiles: [tls.caFile!], proxy: { https: proxy.url } } });
    const b = blob(200_000);
    const repo = { registry: name, repository: 'via/tunnel' };
    expect((await c.pushBlob(repo, b, b.data)).status).toBe('uploaded');
    expect((await c.fetchBlobBytes(repo, b)).equals(b.data)).toBe(true);
    const seen = proxy.requests().slice(before);
    // The proxy sees tunnels only, never a request inside them; keep-alive reuses them.
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((l) => l === `CONNECT ${name}`)).toBe(true);
    // The TLS session is with the registry: without its CA the certificate fails.
    const untrusting = client({ transport: { proxy: { https: proxy.url } } });
    expect((await failure(untrusting.fetchBlobBytes(repo, b))).message).toMatch(/certificate/);
  });

  it('sends proxy credentials from the proxy URL, and names the proxy when they are missing', async () => {
    const b = blob(10_000);
    const tlsRepo = { registry: `${PROXIED_HOST}:${tls.port}`, repository: 'auth/tunnel' };
    const plainRepo = { registry: `${PROXIED_HOST}:${plain.port}`, repository: 'auth/plain' };
    const good = client({ transport: { plainHttp: [plainRepo.registry], caFiles: [tls.caFile!], proxy: { http: authProxy.url, https: authProxy.url } } });
    expect((await good.pushBlob(tlsRepo, b, b.data)).status).toBe('uploaded');
    expect((await good.pushBlob(plainRepo, b, b.data)).status).toBe('uploaded');
    expect((await good.fetchBlobBytes(plainRepo, b)).equals(b.data)).toBe(true);

    const bare = client({ transport: { plainHttp: [plainRepo.registry], caFiles: [tls.caFile!], proxy: { http: authProxy.bare, https: authProxy.bare } } });
    const tunnel = await failure(bare.fetchBlobBytes(tlsRepo, b));
    expect(tunnel.code).toBe('REGISTRY_UNAUTHORIZED');
    expect(tunnel.message).toContain(`CONNECT ${tlsRepo.registry} through proxy ${authProxy.bare}`);
    expect(tunnel.message).toMatch(/proxy authentication required/);
    const absolute = await failure(bare.fetchBlobBytes(plainRepo, b));
    expect(absolute.code).toBe('REGISTRY_UNAUTHORIZED');
    expect(absolute.message).toMatch(/HTTP 407 proxy authentication required/);
    expect(tunnel.message + absolute.message).not.toContain('pass-w0rd');
  });

  it('goes direct for NO_PROXY hosts and loopback registries', async () => {
    const before = proxy.requests().length;
    const b = blob(5_000);
    const loop = client({ transport: { plainHttp: true, proxy: { http: proxy.url } } });
    const loopRepo = { registry: plain.host, repository: 'direct/loop' };
    expect((await loop.pushBlob(loopRepo, b, b.data)).status).toBe('uploaded');
    expect((await loop.fetchBlobBytes(loopRepo, b)).equals(b.data)).toBe(true);
    const skipped = client({ transport: { plainHttp: true, proxy: { http: proxy.url, noProxy: `.obd.test,${PROXIED_HOST}` } } });
    const err = await failure(skipped.fetchBlobBytes({ registry: `${PROXIED_HOST}:${plain.port}`, repository: 'direct/loop' }, b));
    expect(err.message).toMatch(/ENOTFOUND|getaddrinfo/);
    expect(proxy.requests().length).toBe(before);
  });

  it('native blob reads take the proxy from the environment, as curl reads it', async () => {
    const tb = new TestBlob();
    await tb.push(tls);
    const name = `${PROXIED_HOST}:${tls.port}`;
    await withEnv({ https_proxy: proxy.url, HTTPS_PROXY: undefined, NO_PROXY: undefined, no_proxy: undefined }, async () => {
      const r = await remoteGet(tb.args(`https://${name}`, ['--ca', tls.caFile!]), [R]);
      tb.expectBytes(r, [R]);
    });
    expect(proxy.requests()).toContain(`CONNECT ${name}`);
  });

  it('takes the proxy from the environment, and fails naming a proxy that is down', async () => {
    const name = `${PROXIED_HOST}:${tls.port}`;
    const b = blob(1_000);
    await withEnv({ HTTPS_PROXY: proxy.url, NO_PROXY: undefined, no_proxy: undefined }, async () => {
      const c = client({ transport: { caFiles: [tls.caFile!] } });
      expect((await c.pushBlob({ registry: name, repository: 'env/proxy' }, b, b.data)).status).toBe('uploaded');
    });
    expect(proxy.requests()).toContain(`CONNECT ${name}`);
    // The discard port: nothing listens there.
    await withEnv({ HTTPS_PROXY: 'http://127.0.0.1:9', NO_PROXY: undefined, no_proxy: undefined }, async () => {
      const down = client({ transport: { caFiles: [tls.caFile!] } });
      const err = await failure(down.fetchBlobBytes({ registry: name, repository: 'env/proxy' }, b));
      expect(err.message).toContain('through proxy http://127.0.0.1:9');
      expect(err.message).toMatch(/ECONNREFUSED/);
    });
    // A plain-HTTP registry's requests go to the proxy itself: the same message.
    const plainDown = client({ transport: { plainHttp: true, proxy: { http: 'http://127.0.0.1:9' } } });
    const err = await failure(plainDown.fetchBlobBytes({ registry: `${PROXIED_HOST}:${plain.port}`, repository: 'env/proxy' }, b));
    expect(err.code).toBe('REGISTRY_UNREACHABLE');
    expect(err.message).toContain('through proxy http://127.0.0.1:9');
    expect(err.message).toMatch(/ECONNREFUSED/);
  });
});
