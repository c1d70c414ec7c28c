/**
 * Native registry blob reads (cpp/remote through cpp/tools/remote_get) with
 * auth: bearer tokens (one per scope, refreshed on a 401 mid-read), Basic
 * auth with every credential source (cred.json in file order, static
 * entries, http and unix-socket credential servers), and TLS with a CA file
 * and client certificates, all against a real docker-registry.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { makeCerts, startRegistry, type TestRegistry } from './helpers/registry.js';
import { R, R_HEADER, R_TEXT, remoteGet, TestBlob } from './helpers/remote-get.js';

const b = new TestBlob();
const { digest } = b;
const SIZE = b.size;
const REPO = b.repo;
const BLOB_PATH = b.pathRe;
// Auth is checked at open: without a size, open asks the registry first.
const args = b.probeArgs.bind(b);
const blobUrl = b.repoBlobUrl.bind(b);
const expectBytes = b.expectBytes.bind(b);
const expectError = b.expectError.bind(b);
const push = (reg: TestRegistry, userPass?: string) => b.push(reg, userPass);


describe('bearer tokens', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'token' });
    await push(reg, 'alice:secret');
    proxy = await startFaultProxy(reg.url);
  });
  afterAll(async () => {
    await proxy?.close();
    await reg?.stop();
  });
  afterEach(() => proxy.reset());

  const auth = () => ['--auth', `${proxy.host}=alice:secret`];

  it('gets one token per scope and reuses it', async () => {
    reg.token!.requests.length = 0;
    const ranges: [number, number][] = [[0, 10], R, [SIZE - 1, 1]];
    const r = await remoteGet(args(proxy.url, auth()), ranges);
    expectBytes(r, ranges);
    expect(reg.token!.requests).toEqual([{ user: 'alice', scopes: [`repository:${REPO}:pull`], service: 'overlaybd-test-registry' }]);
  });

  it('refreshes the token on a 401 in the middle of reads', async () => {
    reg.token!.requests.length = 0;
    proxy.add({
      method: 'GET',
      range: R_HEADER,
      action: { kind: 'status', status: 401, headers: { 'WWW-Authenticate': `Bearer realm="${reg.token!.url}",service="overlaybd-test-registry",scope="repository:${REPO}:pull"` } },
    });
    const r = await remoteGet([...args(proxy.url, auth()), '--retries', '1'], [[0, 10], R]);
    expectBytes(r, [[0, 10], R]);
    expect(reg.token!.requests).toHaveLength(2);
  });

  it('takes access_token too, and anonymous pulls when the server grants them', async () => {
    reg.token!.options.accessTokenField = true;
    try {
      expectBytes(await remoteGet(args(proxy.url), [R]), [R]);
    } finally {
      reg.token!.options.accessTokenField = false;
    }
  });

  it('fails with EPERM on a wrong password or a refused pull', async () => {
    const wrong = await remoteGet(args(proxy.url, ['--auth', `${proxy.host}=alice:wrong`]));
    expect(wrong.open.code).toBe('EPERM');
    expect(wrong.open.message).toMatch(/token server .* refused user alice/);
    const grant = reg.token!.options.grant;
    reg.token!.options.grant = () => [];
    try {
      const refused = await remoteGet(args(proxy.url, auth()));
      expect(refused.open.code).toBe('EPERM');
      expect(refused.open.message).toContain(digest);
    } finally {
      reg.token!.options.grant = grant;
    }
  });
});

describe('Basic auth and credential sources', () => {
  let reg: TestRegistry;
  let dir: string;
  const servers: (http.Server | https.Server)[] = [];
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'basic' });
    await push(reg, 'alice:secret');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-remote-creds-'));
  });
  afterAll(async () => {
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    await reg?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const b64 = (s: string) => Buffer.from(s).toString('base64');

  it('matches cred.json keys in file order', async () => {
    const file = path.join(dir, 'cred.json');
    // Both keys match; the first in the file wins.
    fs.writeFileSync(file, `{"auths": {"${reg.host}/lazy": {"auth": "${b64('alice:secret')}"}, "${reg.host}": {"username": "alice", "password": "wrong"}}}`);
    expectBytes(await remoteGet(args(reg.url, ['--cred-file', file]), [R]), [R]);
    fs.writeFileSync(file, `{"auths": {"${reg.host}": {"username": "alice", "password": "wrong"}, "${reg.host}/lazy/app": {"auth": "${b64('alice:secret')}"}}}`);
    const r = await remoteGet(args(reg.url, ['--cred-file', file]), [R]);
    expect(r.open.code).toBe('EPERM');
    fs.writeFileSync(file, '{"auths": {"other.example": {"auth": "eDp5"}}}');
    const none = await remoteGet(args(reg.url, ['--cred-file', file]));
    expect(none.open.code).toBe('EPERM');
    expect(none.open.message).toMatch(/no credentials match/);
  });

  it('uses static credentials handed down by TypeScript', async () => {
    expectBytes(await remoteGet(args(reg.url, ['--auth', `${reg.host}/lazy/app=alice:secret`]), [R]), [R]);
  });

  async function credServer(listen: (s: http.Server) => Promise<void>, seen: string[]): Promise<void> {
    const s = http.createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      seen.push(`${u.pathname}?${u.searchParams.get('remote_url')}`);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ traceId: 't1', success: true, data: { auths: { [reg.host]: { username: 'alice', password: 'secret' } } } }));
    });
    servers.push(s);
    await listen(s);
  }

  it('asks an http credential server and a unix socket one', async () => {
    const seen: string[] = [];
    let port = 0;
    await credServer((s) => new Promise((r) => s.listen(0, '127.0.0.1', () => ((port = (s.address() as { port: number }).port), r()))), seen);
    expectBytes(await remoteGet(args(reg.url, ['--cred-server', `http,http://127.0.0.1:${port}/auth`]), [R]), [R]);
    expect(seen[0]).toBe(`/auth?${blobUrl(reg.url)}/${digest}`);
    const sock = path.join(dir, 'cred.sock');
    await credServer((s) => new Promise((r) => s.listen(sock, () => r())), seen);
    expectBytes(await remoteGet(args(reg.url, ['--cred-server', `uds,${sock}`]), [R]), [R]);
    expect(seen.at(-1)).toBe(`/auth?${blobUrl(reg.url)}/${digest}`);
  });

  it('asks an https credential server with a client certificate', async () => {
    const c = makeCerts(path.join(dir, 'cred-tls'));
    const seen: string[] = [];
    const s = https.createServer(
      { cert: fs.readFileSync(c.cert), key: fs.readFileSync(c.key), ca: fs.readFileSync(c.ca), requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        seen.push(req.url ?? '');
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ traceId: 't3', success: true, data: { auths: { [reg.host]: { auth: b64('alice:secret') } } } }));
      },
    );
    servers.push(s);
    const port = await new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as { port: number }).port)));
    const tls = ['--cred-server', `https,https://127.0.0.1:${port}/auth`, '--cred-server-ca', c.ca];
    expectBytes(await remoteGet(args(reg.url, [...tls, '--cred-server-cert', c.clientCert, '--cred-server-key', c.clientKey]), [R]), [R]);
    expect(seen).toHaveLength(1);
    // Without the client certificate the server refuses the handshake: the provider failed.
    const r = await remoteGet(args(reg.url, tls));
    expect(r.open.code).toBe('EIO');
    expect(r.open.message).toMatch(/credential server https/);
  });

  it('reports a failing credential server as the reason', async () => {
    const s = http.createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ traceId: 't2', success: false }));
    });
    servers.push(s);
    const port = await new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as { port: number }).port)));
    const r = await remoteGet(args(reg.url, ['--cred-server', `http,http://127.0.0.1:${port}/auth`]));
    expect(r.open.code).toBe('EIO');
    expect(r.open.message).toMatch(/credential server .*success/);
  });
});

describe('TLS with client certificates', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'tls', clientCerts: true });
    const certDir = reg.certDir!;
    fs.copyFileSync(reg.clientCert!.cert, path.join(certDir, 'client.cert'));
    fs.copyFileSync(reg.clientCert!.key, path.join(certDir, 'client.key'));
    await push(reg);
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('trusts ca_file and presents the client certificate', async () => {
    const ranges: [number, number][] = [R, [0, SIZE]];
    const r = await remoteGet(args(reg.url, ['--ca', reg.caFile!, '--cert', reg.clientCert!.cert, '--key', reg.clientCert!.key]), ranges);
    expectBytes(r, ranges);
  });

  it('fails with EIO without the CA or without the client certificate', async () => {
    const noCa = await remoteGet(args(reg.url, ['--cert', reg.clientCert!.cert, '--key', reg.clientCert!.key, '--retries', '1']));
    expect(noCa.open.code).toBe('EIO');
    expect(noCa.open.message).toMatch(/certificate/i);
    const noCert = await remoteGet(args(reg.url, ['--ca', reg.caFile!, '--retries', '1']));
    expect(noCert.open.code).toBe('EIO');
    expect(noCert.open.message).toContain(digest);
  });
});
