/**
 * Which HTTP proxy a registry request goes through, from HTTP_PROXY,
 * HTTPS_PROXY and NO_PROXY (or their lower-case forms), with the rules of
 * Go's net/http (golang.org/x/net/http/httpproxy), which upstream's
 * convertor and snapshotter follow: the upper-case name wins; a proxy
 * without a scheme is http://; localhost and loopback addresses are never
 * proxied; NO_PROXY is `*` or a comma-separated list of IPs, CIDRs, and
 * domains (`example.com` is the domain and its subdomains, `.example.com`
 * and `*.example.com` the subdomains only), each with an optional port.
 * Under CGI (REQUEST_METHOD set) HTTP_PROXY is ignored, as Go does, since a
 * request's `Proxy:` header would set it.
 */
import net from 'node:net';
import { OverlaybdError } from '../errors.js';

export interface ProxyEnv {
  /** Proxy for http:// requests (HTTP_PROXY). */
  http?: string;
  /** Proxy for https:// requests (HTTPS_PROXY). */
  https?: string;
  /** Hosts reached directly (NO_PROXY). */
  noProxy?: string;
}

/** The proxy settings of an environment (default: this process's). */
export function proxyEnvFrom(env: NodeJS.ProcessEnv = process.env): ProxyEnv {
  const any = (...names: string[]) => names.map((n) => env[n]).find((v) => v !== undefined && v !== '');
  return {
    http: env.REQUEST_METHOD ? env.http_proxy || undefined : any('HTTP_PROXY', 'http_proxy'),
    https: any('HTTPS_PROXY', 'https_proxy'),
    noProxy: any('NO_PROXY', 'no_proxy'),
  };
}

type Rule =
  | { kind: 'all' }
  | { kind: 'cidr'; list: net.BlockList }
  | { kind: 'ip'; list: net.BlockList; port: string }
  | { kind: 'domain'; suffix: string; alsoExact: boolean; port: string };

/** An IPv6 host without its URL brackets. */
export function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function parseRules(noProxy: string): Rule[] {
  const rules: Rule[] = [];
  for (const raw of noProxy.split(',')) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return [{ kind: 'all' }];
    const slash = entry.indexOf('/');
    if (slash > 0) {
      const [addr, bits] = [entry.slice(0, slash), Number(entry.slice(slash + 1))];
      const family = net.isIP(addr);
      if (family !== 0 && Number.isInteger(bits) && bits >= 0 && bits <= (family === 6 ? 128 : 32)) {
        const list = new net.BlockList();
        list.addSubnet(addr, bits, family === 6 ? 'ipv6' : 'ipv4');
        rules.push({ kind: 'cidr', list });
      }
      continue; // Go skips what it cannot parse
    }
    // host, host:port, [v6]:port or a bare v6 address
    let host = entry;
    let port = '';
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m) [host, port] = [m[1]!, m[2]!];
    host = unbracket(host);
    const family = net.isIP(host);
    if (family !== 0) {
      const list = new net.BlockList();
      list.addAddress(host, family === 6 ? 'ipv6' : 'ipv4');
      rules.push({ kind: 'ip', list, port });
      continue;
    }
    if (host.startsWith('*.')) host = host.slice(1);
    const alsoExact = !host.startsWith('.');
    rules.push({ kind: 'domain', suffix: alsoExact ? `.${host}` : host, alsoExact, port });
  }
  return rules;
}

function parseProxy(value: string, variable: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new OverlaybdError('CONFIG_INVALID', `${variable}: not a proxy URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new OverlaybdError(
      'CONFIG_INVALID',
      `${variable}: proxy scheme ${url.protocol.slice(0, -1)} is not supported (use http:// or https://)`,
    );
  }
  if (url.hostname === '') throw new OverlaybdError('CONFIG_INVALID', `${variable}: proxy URL has no host: ${value}`);
  return url;
}

/** Picks the proxy of each request URL; built once per transport. */
export class ProxyResolver {
  private readonly http?: URL;
  private readonly https?: URL;
  private readonly rules: Rule[];

  constructor(env: ProxyEnv) {
    if (env.http) this.http = parseProxy(env.http, 'HTTP_PROXY');
    if (env.https) this.https = parseProxy(env.https, 'HTTPS_PROXY');
    this.rules = parseRules(env.noProxy ?? '');
  }

  /** The proxy for `url`, or undefined to connect directly. */
  proxyFor(url: URL): URL | undefined {
    const proxy = url.protocol === 'https:' ? this.https : url.protocol === 'http:' ? this.http : undefined;
    if (!proxy || !this.useProxy(url)) return undefined;
    return proxy;
  }

  private useProxy(url: URL): boolean {
    const host = unbracket(url.hostname.toLowerCase());
    if (host === 'localhost') return false;
    const family = net.isIP(host);
    if (inList(LOOPBACK, host, family)) return false;
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    for (const r of this.rules) {
      switch (r.kind) {
        case 'all':
          return false;
        case 'cidr':
          if (inList(r.list, host, family)) return false;
          break;
        case 'ip':
          if (inList(r.list, host, family) && (r.port === '' || r.port === port)) return false;
          break;
        case 'domain':
          if ((host.endsWith(r.suffix) || (r.alsoExact && host === r.suffix.slice(1))) && (r.port === '' || r.port === port))
            return false;
          break;
      }
    }
    return true;
  }
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** Whether `host`, an IP address of `family` (0: not an address), is in `list`. */
function inList(list: net.BlockList, host: string, family: number): boolean {
  return family !== 0 && list.check(host, family === 6 ? 'ipv6' : 'ipv4');
}
