/**
 * Starts Debian's docker-registry 2.8 on 127.0.0.1 with a free port, in a
 * temp dir, in one of four modes: plain HTTP, htpasswd basic auth, bearer
 * tokens from an in-process token server, or TLS with a self-signed CA
 * (optionally requiring client certificates). `stop()` kills the process and
 * removes the dir; call it in afterAll.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';

export type RegistryMode = 'plain' | 'basic' | 'token' | 'tls';

export interface TokenGrant {
  /** User name, or undefined for an anonymous request. */
  user: string | undefined;
  type: string;
  name: string;
  actions: string[];
}

export interface TokenServerOptions {
  /** user -> password. */
  users?: Record<string, string>;
  /** Decides the actions granted (default: everything asked for to a known user, `pull` to anonymous). */
  grant?: (g: TokenGrant) => string[];
  /** Users whose token requests get 403 even with the right password. */
  forbidden?: string[];
  /** Seconds (default 300). */
  expiresIn?: number;
  /** Answer with `access_token` instead of `token`. */
  accessTokenField?: boolean;
  /** OAuth2 refresh tokens (docker identity tokens) -> user, accepted by POST grant_type=refresh_token. */
  refreshTokens?: Record<string, string>;
}

export interface StartOptions {
  mode: RegistryMode;
  /** Basic auth and token server users (default { alice: 'secret' }). */
  users?: Record<string, string>;
  token?: Omit<TokenServerOptions, 'users'>;
  /** TLS: require client certificates signed by the test CA. */
  clientCerts?: boolean;
}

export interface TokenServer {
  url: string;
  /** The live options: tests may change expiresIn, accessTokenField, grant and forbidden between requests. */
  options: TokenServerOptions;
  /** Every token request: user (if basic creds were valid), scopes asked. */
  requests: { user: string | undefined; scopes: string[]; service: string | null }[];
  close(): Promise<void>;
}

export interface TestRegistry {
  mode: RegistryMode;
  /** `127.0.0.1:<port>`: the registry name for references. */
  host: string;
  port: number;
  /** `http://127.0.0.1:<port>` or `https://...`. */
  url: string;
  dir: string;
  users: Record<string, string>;
  /** TLS mode: CA certificate file (PEM), a certs.d-style dir holding `ca.crt`, and a client cert/key signed by the CA. */
  caFile?: string;
  certDir?: string;
  clientCert?: { cert: string; key: string };
  token?: TokenServer;
  /** Log file of the registry process. */
  logFile: string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHook = false;

/**
 * Remembers a child so that it is killed if the test process exits without
 * reaching afterAll (a crash or Ctrl-C); afterAll's stop() is the normal path.
 */
export function trackChild(p: ChildProcess): void {
  live.add(p);
  p.once('exit', () => live.delete(p));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address() as net.AddressInfo;
      s.close(() => resolve(a.port));
    });
  });
}

/** Waits until a child listens on 127.0.0.1:`port`; fails with its log's tail if it exits or takes over 10 s. */
async function waitListening(port: number, proc: ChildProcess, what: string, logFile: string): Promise<void> {
  const tail = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(-2000) : '');
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode}: ${tail()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} not listening on ${port} after 10 s: ${tail()}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

export interface LoopbackChild {
  dir: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * A server child on 127.0.0.1 with its files in a temp dir: `launch` writes
 * its config there and spawns it; resolves once it listens. If that fails,
 * and on `stop()`, the child is stopped and the dir removed.
 */
export async function startLoopbackChild(
  what: string,
  launch: (dir: string, port: number) => { proc: ChildProcess; log: string },
): Promise<LoopbackChild> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `obd-${what}-`));
  let proc: ChildProcess | undefined;
  const stop = async () => {
    await stopChild(proc, 3000);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const started = launch(dir, port);
    proc = started.proc;
    proc.on('error', () => {});
    trackChild(proc);
    await waitListening(port, proc, what, started.log);
    return { dir, port, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A name for 127.0.0.1 that only the test HTTP proxy resolves (http-proxy.ts). */
export const PROXIED_HOST = 'registry.obd.test';

/** A CA and a server certificate for 127.0.0.1/localhost/PROXIED_HOST, plus a client certificate, all in `dir`. */
export function makeCerts(dir: string): { ca: string; caKey: string; cert: string; key: string; clientCert: string; clientKey: string } {
  fs.mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=overlaybd test CA'], dir);
  fs.writeFileSync(path.join(dir, 'server.ext'), `subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:${PROXIED_HOST}\nextendedKeyUsage=serverAuth\n`);
  openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'], dir);
  openssl(
    ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext'],
    dir,
  );
  fs.writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  openssl(['req', ...ec, '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=overlaybd test client'], dir);
  openssl(
    ['x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.crt', '-days', '2', '-extfile', 'client.ext'],
    dir,
  );
  const p = (f: string) => path.join(dir, f);
  return { ca: p('ca.crt'), caKey: p('ca.key'), cert: p('server.crt'), key: p('server.key'), clientCert: p('client.crt'), clientKey: p('client.key') };
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

/**
 * A token server as the registry's `auth.token` expects: RS256 JWTs whose
 * `x5c` header carries the signing certificate, which is also the registry's
 * rootcertbundle (docker-registry 2.8 verifies the chain against it).
 */
export async function startTokenServer(
  dir: string,
  o: TokenServerOptions & { issuer: string; service: string },
): Promise<TokenServer & { bundle: string }> {
  openssl(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'token.key', '-out', 'token.crt', '-days', '2', '-subj', '/CN=overlaybd test token issuer'],
    dir,
  );
  const key = crypto.createPrivateKey(fs.readFileSync(path.join(dir, 'token.key')));
  const certPem = fs.readFileSync(path.join(dir, 'token.crt'), 'utf8');
  const der = new crypto.X509Certificate(certPem).raw;
  const users = o.users ?? {};
  const requests: TokenServer['requests'] = [];
  const defaultGrant = (g: TokenGrant) => (g.user !== undefined ? g.actions : g.actions.filter((a) => a === 'pull'));
  const server = http.createServer((req, res) => {
    if (req.method === 'POST') {
      // The OAuth2 form: grant_type=refresh_token with an identity token.
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(parts).toString('utf8'));
        const user = o.refreshTokens?.[form.get('refresh_token') ?? ''];
        if (form.get('grant_type') !== 'refresh_token' || user === undefined) {
          res.writeHead(401, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ details: 'unknown refresh token' }));
          return;
        }
        const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
        issue(res, user, scopes, form.get('service'), true);
      });
      return;
    }
    const url = new URL(req.url ?? '/', 'http://x');
    let user: string | undefined;
    const authz = req.headers.authorization;
    if (authz?.startsWith('Basic ')) {
      const dec = Buffer.from(authz.slice(6), 'base64').toString('utf8');
      const i = dec.indexOf(':');
      const u = dec.slice(0, i);
      if (users[u] === undefined || users[u] !== dec.slice(i + 1)) {
        res.writeHead(401, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ details: 'wrong user name or password' }));
        return;
      }
      user = u;
    }
    issue(res, user, url.searchParams.getAll('scope'), url.searchParams.get('service'), o.accessTokenField === true);
  });
  const issue = (res: http.ServerResponse, user: string | undefined, scopes: string[], service: string | null, accessToken: boolean) => {
    requests.push({ user, scopes, service });
    if (user !== undefined && o.forbidden?.includes(user)) {
      res.writeHead(403, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ details: `user ${user} may not have a token` }));
      return;
    }
    const access: { type: string; name: string; actions: string[] }[] = [];
    for (const s of scopes.flatMap((x) => x.split(' '))) {
      const parts = s.split(':');
      if (parts.length < 3) continue;
      const type = parts[0]!;
      const actions = parts[parts.length - 1]!.split(',');
      const name = parts.slice(1, -1).join(':');
      access.push({ type, name, actions: (o.grant ?? defaultGrant)({ user, type, name, actions }) });
    }
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = o.expiresIn ?? 300;
    const header = { typ: 'JWT', alg: 'RS256', x5c: [der.toString('base64')] };
    const claims = {
      iss: o.issuer,
      sub: user ?? '',
      aud: o.service,
      exp: now + expiresIn,
      nbf: now - 1,
      iat: now,
      jti: crypto.randomBytes(8).toString('hex'),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = crypto.sign('sha256', Buffer.from(signingInput), key);
    const token = `${signingInput}.${b64url(sig)}`;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(
      JSON.stringify({
        ...(accessToken ? { access_token: token } : { token }),
        expires_in: expiresIn,
        issued_at: new Date().toISOString(),
      }),
    );
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/token`,
    options: o,
    requests,
    bundle: path.join(dir, 'token.crt'),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function yaml(o: unknown, indent = ''): string {
  if (o === null || typeof o !== 'object') return JSON.stringify(o);
  if (Array.isArray(o)) return `[${o.map((x) => yaml(x)).join(', ')}]`;
  return (
    '\n' +
    Object.entries(o as Record<string, unknown>)
      .map(([k, v]) => `${indent}${k}: ${typeof v === 'object' && v !== null && !Array.isArray(v) ? yaml(v, indent + '  ') : yaml(v)}`)
      .join('\n')
  );
}

async function waitReady(url: string, proc: ChildProcess, logFile: string, client?: { cert: string; key: string }): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) {
      throw new Error(`docker-registry exited with ${proc.exitCode}: ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const mod = url.startsWith('https') ? https : http;
      const tlsOpts = client ? { cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key) } : {};
      const req = mod.get(`${url}/v2/`, { rejectUnauthorized: false, timeout: 1000, ...tlsOpts }, (res) => {
        res.resume();
        resolve(res.statusCode === 200 || res.statusCode === 401);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => {
        req.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`docker-registry at ${url} not ready after 20 s: ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts a registry; a port taken between choosing and binding it costs another try (three in all). */
export async function startRegistry(o: StartOptions): Promise<TestRegistry> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(o);
    } catch (e) {
      if (attempt >= 3 || !/address already in use/.test((e as Error).message)) throw e;
    }
  }
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
export async function stopChild(proc: ChildProcess | undefined, graceMs: number): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

async function startOnce(o: StartOptions): Promise<TestRegistry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `obd-registry-${o.mode}-`));
  const users = o.users ?? { alice: 'secret' };
  let token: (TokenServer & { bundle: string }) | undefined;
  let proc: ChildProcess | undefined;
  const cleanup = async () => {
    await stopChild(proc, 3000);
    await token?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const config: Record<string, unknown> = {
      version: 0.1,
      log: { level: 'info', accesslog: { disabled: true } },
      storage: { filesystem: { rootdirectory: path.join(dir, 'data') }, delete: { enabled: true } },
      http: { addr: host, secret: 'overlaybd-test-secret', headers: { 'X-Content-Type-Options': ['nosniff'] } },
    };
    const reg: TestRegistry = {
      mode: o.mode,
      host,
      port,
      url: `${o.mode === 'tls' ? 'https' : 'http'}://${host}`,
      dir,
      users,
      logFile: path.join(dir, 'registry.log'),
      stop: cleanup,
    };
    if (o.mode === 'basic') {
      const lines = Object.entries(users).map(([u, p]) =>
        execFileSync('htpasswd', ['-Bbn', u, p], { encoding: 'utf8' }).trim(),
      );
      fs.writeFileSync(path.join(dir, 'htpasswd'), lines.join('\n') + '\n');
      config.auth = { htpasswd: { realm: 'overlaybd-test', path: path.join(dir, 'htpasswd') } };
    } else if (o.mode === 'token') {
      token = await startTokenServer(dir, { ...(o.token ?? {}), users, issuer: 'overlaybd-test-issuer', service: 'overlaybd-test-registry' });
      reg.token = token;
      config.auth = {
        token: { realm: token.url, service: 'overlaybd-test-registry', issuer: 'overlaybd-test-issuer', rootcertbundle: token.bundle },
      };
    } else if (o.mode === 'tls') {
      const c = makeCerts(path.join(dir, 'certs'));
      (config.http as Record<string, unknown>).tls = {
        certificate: c.cert,
        key: c.key,
        ...(o.clientCerts ? { clientcas: [c.ca] } : {}),
      };
      reg.caFile = c.ca;
      const certDir = path.join(dir, 'certs.d', host);
      fs.mkdirSync(certDir, { recursive: true });
      fs.copyFileSync(c.ca, path.join(certDir, 'ca.crt'));
      reg.certDir = certDir;
      reg.clientCert = { cert: c.clientCert, key: c.clientKey };
    }
    const cfgFile = path.join(dir, 'config.yml');
    fs.writeFileSync(cfgFile, yaml(config).trimStart() + '\n');
    const log = fs.openSync(reg.logFile, 'w');
    proc = spawn('docker-registry', ['serve', cfgFile], { cwd: dir, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    proc.on('error', () => {});
    trackChild(proc);
    await waitReady(reg.url, proc, reg.logFile, o.clientCerts ? reg.clientCert : undefined);
    return reg;
  } catch (e) {
    await cleanup();
    throw e;
  }
}

export interface SkopeoAuth {
  creds?: string;
  /** Directory with ca.crt (and client.cert/client.key) for TLS. */
  certDir?: string;
  tlsVerify?: boolean;
}

/**
 * `skopeo copy [--all] oci:<layout>:<tag> docker://<dest>`. Asynchronous, so
 * an in-process token server can answer skopeo meanwhile.
 */
export async function skopeoCopy(layoutDir: string, tag: string, dest: string, auth: SkopeoAuth = {}, all = true): Promise<void> {
  const args = ['copy', '--quiet', '--preserve-digests'];
  if (all) args.push('--all');
  args.push(`--dest-tls-verify=${auth.tlsVerify === true ? 'true' : 'false'}`);
  if (auth.certDir) args.push('--dest-cert-dir', auth.certDir);
  if (auth.creds) args.push('--dest-creds', auth.creds);
  args.push(`oci:${layoutDir}:${tag}`, `docker://${dest}`);
  await new Promise<void>((resolve, reject) => {
    execFile('skopeo', args, { timeout: 60_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`skopeo ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve();
    });
  });
}

/**
 * A registry for the enclosing describe block: started (and seeded) in
 * beforeAll, stopped in afterAll. Call the returned getter inside tests.
 */
export function useRegistry(o: StartOptions, seed?: (reg: TestRegistry) => Promise<void>): () => TestRegistry {
  let reg: TestRegistry | undefined;
  beforeAll(async () => {
    reg = await startRegistry(o);
    await seed?.(reg);
  });
  afterAll(async () => {
    await reg?.stop();
  });
  return () => reg!;
}
