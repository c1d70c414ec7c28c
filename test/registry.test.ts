/**
 * The registry client against real docker-registry 2.8 processes (plain
 * HTTP, htpasswd, bearer tokens, TLS) and through a fault-injecting proxy.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { registryClientFrom } from '../lib/cli/registry-flags.js';
import { OverlaybdError, isOverlaybdError, type ErrorCode } from '../lib/errors.js';
import {
  DigestVerifier,
  MediaTypes,
  RegistryClient,
  credentialProvider,
  loadDockerConfig,
  normaliseScopes,
  parseChallenges,
  parseReference,
  parseRetryAfter,
  parseUserPass,
  RetryableError,
  resolveRetryPolicy,
  sha256Digest,
  type RegistryClientOptions,
  type RepoLocator,
  withRetry,
} from '../lib/registry/index.js';
import { silentLogger } from '../lib/log.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { sampleImages, writeOciLayout } from './helpers/oci-layout.js';
import { skopeoCopy, startRegistry, useRegistry, type TestRegistry } from './helpers/registry.js';

const fixtures = sampleImages();
const single = fixtures.single;
let layoutDir: string;
let workDir: string;

beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-registry-test-'));
  layoutDir = path.join(workDir, 'layout');
  writeOciLayout(layoutDir, { v1: single, multi: { index: fixtures.index, images: fixtures.platforms } });
});

afterAll(() => {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

async function expectCode(p: Promise<unknown>, code: ErrorCode, ...fragments: (string | RegExp)[]): Promise<OverlaybdError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  if (!isOverlaybdError(err)) throw new Error(`expected OverlaybdError ${code}, got ${String(err)}`);
  expect(err.code, err.message).toBe(code);
  for (const f of fragments) expect(err.message).toMatch(f);
  return err;
}

const fast: RegistryClientOptions['retry'] = { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 200, maxTotalMs: 20_000 };

function client(o: RegistryClientOptions = {}): RegistryClient {
  return new RegistryClient({
    transport: { plainHttp: true },
    credentials: { dockerConfig: false },
    retry: fast,
    ...o,
  });
}

async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function randomBlob(n: number): { data: Buffer; digest: string } {
  const data = crypto.randomBytes(n);
  return { data, digest: sha256Digest(data) };
}

// ---------------------------------------------------------------------------

describe('pieces without a registry', () => {
  it('parses and normalises references', () => {
    expect(parseReference('busybox')).toEqual({ registry: 'docker.io', repository: 'library/busybox', tag: 'latest' });
    expect(parseReference('index.docker.io/foo/bar:1.0')).toEqual({ registry: 'docker.io', repository: 'foo/bar', tag: '1.0' });
    const d = 'sha256:' + 'a'.repeat(64);
    expect(parseReference(`localhost:5000/a/b@${d}`)).toEqual({ registry: 'localhost:5000', repository: 'a/b', digest: d });
    expect(parseReference(`127.0.0.1:5000/x/y:t@${d}`)).toEqual({ registry: '127.0.0.1:5000', repository: 'x/y', tag: 't', digest: d });
    expect(parseReference('[::1]:5000/ns/img:v2')).toEqual({ registry: '[::1]:5000', repository: 'ns/img', tag: 'v2' });
    expect(parseReference('registry.example.com/only/repo', null)).toEqual({ registry: 'registry.example.com', repository: 'only/repo' });
    expect(() => parseReference('Upper/Case')).toThrow(/invalid image reference "Upper\/Case"/);
    expect(() => parseReference('a/b@sha256:xyz')).toThrow(OverlaybdError);
    expect(() => parseReference('a/b:bad tag')).toThrow(/bad tag|whitespace|invalid/);
  });

  it('parses WWW-Authenticate challenges and merges scopes', () => {
    const c = parseChallenges(
      'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push",error="insufficient_scope", Basic realm="x, y"',
    );
    expect(c).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'reg.example', scope: 'repository:a/b:pull,push', error: 'insufficient_scope' } },
      { scheme: 'basic', params: { realm: 'x, y' } },
    ]);
    expect(normaliseScopes(['repository:z:push', 'repository:a:pull', 'repository:z:pull'])).toEqual([
      'repository:a:pull',
      'repository:z:pull,push',
    ]);
  });

  it('reads credentials from -u and Docker config.json', async () => {
    expect(parseUserPass('bob:pa:ss')).toEqual({ username: 'bob', password: 'pa:ss' });
    expect(parseUserPass('bob')).toEqual({ username: 'bob', password: '' });
    expect(() => parseUserPass(':x')).toThrow(/empty user name/);
    const dir = fs.mkdtempSync(path.join(workDir, 'dockercfg-'));
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hubpass').toString('base64') },
          '127.0.0.1:5000': { username: 'u1', password: 'p1' },
          'https://reg.example.com/v2/': { auth: Buffer.from('u2:p:2').toString('base64') },
        },
      }),
    );
    const m = loadDockerConfig(file);
    expect(m.get('docker.io')).toEqual({ username: 'hubuser', password: 'hubpass' });
    expect(m.get('127.0.0.1:5000')).toEqual({ username: 'u1', password: 'p1' });
    expect(m.get('reg.example.com')).toEqual({ username: 'u2', password: 'p:2' });
    const prev = process.env.DOCKER_CONFIG;
    process.env.DOCKER_CONFIG = dir;
    try {
      expect(await credentialProvider()('reg.example.com')).toEqual({ username: 'u2', password: 'p:2' });
      expect(credentialProvider({ userPass: 'x:y' })('reg.example.com')).toEqual({ username: 'x', password: 'y' });
      expect(await credentialProvider()('other.example')).toBeUndefined();
    } finally {
      if (prev === undefined) delete process.env.DOCKER_CONFIG;
      else process.env.DOCKER_CONFIG = prev;
    }
    fs.writeFileSync(file, JSON.stringify({ auths: { h: { auth: 123 } } }));
    expect(() => loadDockerConfig(file)).toThrow(/config\.json: auths\.h\.auth: /);
    expect(loadDockerConfig(path.join(dir, 'missing.json')).size).toBe(0);
  });

  it('retries only retryable failures, within the attempt bound, and parses Retry-After', async () => {
    const p = resolveRetryPolicy({ maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 });
    const flaky = new OverlaybdError('REGISTRY_UNREACHABLE', 'flaky');
    let n = 0;
    const retried: number[] = [];
    const ok = await withRetry(
      p,
      async (attempt) => {
        n++;
        if (attempt < 3) throw new RetryableError(flaky);
        return attempt;
      },
      { onRetry: (i) => retried.push(i.attempt) },
    );
    expect([ok, n, retried]).toEqual([3, 3, [2, 3]]);
    n = 0;
    await expect(withRetry(p, async () => { n++; throw new RetryableError(flaky); })).rejects.toBe(flaky);
    expect(n).toBe(3);
    n = 0;
    const fatal = new OverlaybdError('REGISTRY_DENIED', 'no');
    await expect(withRetry(p, async () => { n++; throw fatal; })).rejects.toBe(fatal);
    expect(n).toBe(1);
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(() => resolveRetryPolicy({ maxAttempts: 0 })).toThrow(/maxAttempts/);
  });

  it('verifies digests of streams', async () => {
    const { data, digest } = randomBlob(1000);
    const ok = await readAll(Readable.from([data]).pipe(new DigestVerifier({ digest, size: 1000, what: 'test' })));
    expect(ok.equals(data)).toBe(true);
    const bad = Buffer.from(data);
    bad[5] = bad[5]! ^ 1;
    await expectCode(readAll(Readable.from([bad]).pipe(new DigestVerifier({ digest, what: 'test' }))), 'DIGEST_MISMATCH', /content digest is/);
    await expectCode(
      readAll(Readable.from([data.subarray(0, 10)]).pipe(new DigestVerifier({ digest, size: 1000, what: 'test' }))),
      'DIGEST_MISMATCH',
      /ended after 10 of 1000/,
    );
  });
});

// ---------------------------------------------------------------------------

describe('plain HTTP registry', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let c: RegistryClient;
  let viaProxy: RegistryClient;
  let app: RepoLocator;
  let papp: RepoLocator;

  beforeAll(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await skopeoCopy(layoutDir, 'v1', `${reg.host}/demo/app:v1`);
    await skopeoCopy(layoutDir, 'multi', `${reg.host}/demo/app:multi`);
    proxy = await startFaultProxy(reg.url);
    c = client();
    viaProxy = client();
    app = { registry: reg.host, repository: 'demo/app' };
    papp = { registry: proxy.host, repository: 'demo/app' };
  });

  afterAll(async () => {
    c?.close();
    viaProxy?.close();
    await proxy?.close();
    await reg?.stop();
  });

  it('resolves a tag to a manifest and an index', async () => {
    const m = await c.resolve(`${reg.host}/demo/app:v1`);
    expect(m.descriptor).toEqual({ mediaType: MediaTypes.ociManifest, digest: single.manifest.digest, size: single.manifest.size });
    expect(m.bytes.equals(single.manifest.data)).toBe(true);
    const i = await c.resolve(`${reg.host}/demo/app:multi`);
    expect(i.descriptor).toEqual({ mediaType: MediaTypes.ociIndex, digest: fixtures.index.digest, size: fixtures.index.size });
    const byDigest = await c.getManifest(`${reg.host}/demo/app@${fixtures.platforms[1]!.manifest.digest}`);
    expect(byDigest.bytes.equals(fixtures.platforms[1]!.manifest.data)).toBe(true);
    const head = await c.headManifest(`${reg.host}/demo/app:v1`);
    expect(head).toEqual({ mediaType: MediaTypes.ociManifest, digest: single.manifest.digest, size: single.manifest.size });
    expect(await c.headManifest(`${reg.host}/demo/app:nope`)).toBeUndefined();
  });

  it('names the repository and tag or digest in 404 errors', async () => {
    await expectCode(c.resolve(`${reg.host}/demo/app:missing`), 'REGISTRY_NOT_FOUND', 'demo/app:missing', reg.url, /MANIFEST_UNKNOWN/);
    await expectCode(c.resolve(`${reg.host}/demo/none:v1`), 'REGISTRY_NOT_FOUND', 'demo/none:v1', /NAME_UNKNOWN|MANIFEST_UNKNOWN/);
    const d = sha256Digest('absent');
    await expectCode(c.fetchBlob(app, { digest: d }), 'REGISTRY_NOT_FOUND', `demo/app@${d}`, `${reg.url}/v2/demo/app/blobs/${d}`);
    await expectCode(c.blobSize(app, d), 'REGISTRY_NOT_FOUND', d, 'demo/app');
  });

  it('fetches blobs verified, by range, and their size', async () => {
    const layer = single.layers[1]!;
    expect((await c.fetchBlobBytes(app, layer)).equals(layer.data)).toBe(true);
    expect(await c.blobSize(app, layer.digest)).toBe(layer.size);
    expect(await c.blobExists(app, single.config.digest)).toBe(true);
    const part = await c.fetchBlobRange(app, layer.digest, 10, 20);
    expect(part.equals(layer.data.subarray(10, 30))).toBe(true);
    const tail = await c.fetchBlobRange(app, layer.digest, layer.size - 5, 100);
    expect(tail.equals(layer.data.subarray(layer.size - 5))).toBe(true);
    await expectCode(c.fetchBlobRange(app, layer.digest, layer.size + 10, 10), 'OUT_OF_RANGE', /416/);
    const file = path.join(workDir, 'layer.bin');
    await c.fetchBlobToFile(app, layer, file);
    expect(fs.readFileSync(file).equals(layer.data)).toBe(true);
  });

  it('pushes blobs and manifests and reads them back', async () => {
    const dst = { registry: reg.host, repository: 'roundtrip/one' };
    for (const b of [single.config, ...single.layers]) {
      const r = await c.pushBlob(dst, b, b.data);
      expect(r.status).toBe('uploaded');
    }
    expect((await c.pushBlob(dst, single.config, single.config.data)).status).toBe('exists');
    const d = await c.pushManifest(dst, single.manifest.data, MediaTypes.ociManifest, 'v1');
    expect(d).toEqual({ mediaType: MediaTypes.ociManifest, digest: single.manifest.digest, size: single.manifest.size });
    const back = await c.resolve(`${reg.host}/roundtrip/one:v1`);
    expect(back.bytes.equals(single.manifest.data)).toBe(true);
    // Docker schema2 media types come back as such.
    const docker = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.dockerManifest,
        config: { mediaType: MediaTypes.dockerConfig, digest: single.config.digest, size: single.config.size },
        layers: single.layers.map((l) => ({ mediaType: MediaTypes.dockerLayerGzip, digest: l.digest, size: l.size })),
      }),
    );
    const dd = await c.pushManifest(dst, docker, MediaTypes.dockerManifest, 'docker');
    const list = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.dockerManifestList,
        manifests: [{ mediaType: MediaTypes.dockerManifest, digest: dd.digest, size: dd.size, platform: { architecture: 'amd64', os: 'linux' } }],
      }),
    );
    await c.pushManifest(dst, list, MediaTypes.dockerManifestList, 'docker-list');
    expect((await c.resolve(`${reg.host}/roundtrip/one:docker`)).descriptor).toEqual(dd);
    expect((await c.resolve(`${reg.host}/roundtrip/one:docker-list`)).descriptor.mediaType).toBe(MediaTypes.dockerManifestList);
    // An index pushed by digest, over both platform manifests.
    for (const img of fixtures.platforms) {
      for (const b of [img.config, ...img.layers]) await c.pushBlob(dst, b, { file: writeTmp(b.data) });
      await c.pushManifest(dst, img.manifest.data, MediaTypes.ociManifest);
    }
    const idx = await c.pushManifest(dst, fixtures.index.data, MediaTypes.ociIndex, fixtures.index.digest);
    expect(idx.digest).toBe(fixtures.index.digest);
    const got = await c.getManifest(`${reg.host}/roundtrip/one@${fixtures.index.digest}`);
    expect(got.descriptor.mediaType).toBe(MediaTypes.ociIndex);
    await expectCode(c.pushManifest(dst, single.manifest.data, MediaTypes.ociManifest, 'bad tag!'), 'CONFIG_INVALID', /invalid tag "bad tag!"/);
    await expectCode(
      c.pushManifest(dst, fixtures.index.data, MediaTypes.ociIndex, sha256Digest('other')),
      'DIGEST_MISMATCH',
      /hash to/,
    );
  });

  function writeTmp(data: Buffer): string {
    const f = path.join(workDir, `blob-${crypto.randomBytes(4).toString('hex')}`);
    fs.writeFileSync(f, data);
    return f;
  }

  it('uploads in chunks from bytes, files and one-shot streams', async () => {
    const cc = client({ chunkSize: 64 * 1024, monolithicMax: 64 * 1024 });
    const dst = { registry: proxy.host, repository: 'chunked/one' };
    try {
      const a = randomBlob(300 * 1024 + 17);
      proxy.reset();
      expect((await cc.pushBlob(dst, a, a.data)).status).toBe('uploaded');
      expect(proxy.count('PATCH')).toBe(5);
      expect(proxy.count('PUT', /digest=/)).toBe(1);
      expect(proxy.log.filter((e) => e.method === 'PATCH').every((e) => e.status === 202)).toBe(true);
      expect((await cc.fetchBlobBytes(dst, a)).equals(a.data)).toBe(true);

      const b = randomBlob(200 * 1024);
      expect((await cc.pushBlob(dst, b, { file: writeTmp(b.data) })).status).toBe('uploaded');
      const s = randomBlob(150 * 1024);
      const stream = Readable.from((function* () {
        for (let i = 0; i < s.data.length; i += 10_000) yield s.data.subarray(i, i + 10_000);
      })());
      expect((await cc.pushBlob(dst, { digest: s.digest }, stream)).status).toBe('uploaded');
      expect((await cc.fetchBlobBytes(dst, s)).equals(s.data)).toBe(true);
      // A source that does not match its digest is refused before commit.
      const wrong = randomBlob(100 * 1024);
      await expectCode(cc.pushBlob(dst, { digest: sha256Digest('x') }, wrong.data), 'DIGEST_MISMATCH', /hashing to/);
      await expectCode(cc.pushBlob(dst, { digest: sha256Digest('z') }, Readable.from([wrong.data])), 'DIGEST_MISMATCH', /hashing to/);
      expect(await cc.blobExists(dst, sha256Digest('z'))).toBe(false);
      // A file sent in one PUT is checked by the registry against ?digest=.
      const wrongFile = path.join(workDir, 'wrong-mono.blob');
      fs.writeFileSync(wrongFile, wrong.data);
      await expectCode(c.pushBlob(app, { digest: sha256Digest('m'), size: wrong.data.length }, { file: wrongFile }), 'DIGEST_MISMATCH', /refused the content/);
      expect(await c.blobExists(app, sha256Digest('m'))).toBe(false);
      // A source stream that fails is an EIO naming the blob, not a hang.
      const failing = new Readable({
        read() {
          this.destroy(new Error('disk on fire'));
        },
      });
      await expectCode(cc.pushBlob(dst, { digest: sha256Digest('f') }, failing), 'EIO', /disk on fire/, sha256Digest('f'));
    } finally {
      cc.close();
    }
  });

  it('mounts a blob across repositories without uploading it', async () => {
    const layer = single.layers[0]!;
    const dst = { registry: proxy.host, repository: 'mounted/target' };
    proxy.reset();
    const r = await viaProxy.pushBlob(dst, layer, layer.data, { mountFrom: 'demo/app' });
    expect(r).toEqual({ status: 'mounted', digest: layer.digest, from: 'demo/app' });
    expect(proxy.count('POST', /mount=/)).toBe(1);
    expect(proxy.count('PATCH')).toBe(0);
    expect(proxy.count('PUT')).toBe(0);
    expect(proxy.log.find((e) => e.method === 'POST')?.status).toBe(201);
    expect(await c.blobSize({ registry: reg.host, repository: 'mounted/target' }, layer.digest)).toBe(layer.size);
    // The source repository lacks the blob: the registry answers 202, and the client uploads.
    const fresh = randomBlob(4096);
    proxy.reset();
    const r2 = await viaProxy.pushBlob(dst, fresh, fresh.data, { mountFrom: ['demo/empty', 'demo/app'] });
    expect(r2.status).toBe('uploaded');
    expect(proxy.log.filter((e) => e.method === 'POST' && /mount=/.test(e.path)).map((e) => e.status)).toEqual([202, 202]);
    expect(proxy.count('PUT', /digest=/)).toBe(1);
    expect(await viaProxy.mountBlob(dst, single.config.digest, 'demo/app')).toBe('mounted');
    expect(await viaProxy.mountBlob(dst, sha256Digest('nothing'), 'demo/app')).toBe('not-mounted');
  });

  it('logs through the logger hook with credentials redacted', async () => {
    const events: { event: string; fields?: Record<string, unknown> }[] = [];
    const lc = client({ logger: { ...silentLogger, debug: (event, fields) => events.push({ event, ...(fields ? { fields } : {}) }) } });
    await lc.resolve(`${reg.host}/demo/app:v1`);
    lc.close();
    expect(events.some((e) => e.event === 'http.request' && String(e.fields?.url).includes('/v2/demo/app/manifests/v1'))).toBe(true);
    expect(events.some((e) => e.event === 'http.response' && e.fields?.status === 200)).toBe(true);
  });

  describe('faults', () => {
    it('retries 500s and 503s, and gives up after the attempt bound', async () => {
      proxy.reset();
      proxy.add({ method: 'GET', path: /manifests\/v1/, times: 2, action: { kind: 'status', status: 500, body: 'boom' } });
      const before = viaProxy.stats.retries;
      const m = await viaProxy.resolve(`${proxy.host}/demo/app:v1`);
      expect(m.descriptor.digest).toBe(single.manifest.digest);
      expect(viaProxy.stats.retries - before).toBe(2);
      expect(proxy.count('GET', /manifests\/v1/)).toBe(3);

      proxy.reset();
      proxy.add({ method: 'GET', path: /manifests\/v1/, times: 10, action: { kind: 'status', status: 503 } });
      await expectCode(viaProxy.resolve(`${proxy.host}/demo/app:v1`), 'REGISTRY_ERROR', /HTTP 503/, /after 4 attempts/, proxy.url, 'pull manifest');
      expect(proxy.count('GET')).toBe(4);

      proxy.reset();
      proxy.add({ method: 'PUT', path: /manifests/, action: { kind: 'status', status: 502 } });
      await viaProxy.pushManifest(papp, single.manifest.data, MediaTypes.ociManifest, 'again');
      expect(proxy.count('PUT')).toBe(2);
    });

    it('honours Retry-After on 429', async () => {
      proxy.reset();
      proxy.add({ method: 'HEAD', times: 1, action: { kind: 'status', status: 429, headers: { 'Retry-After': '1' } } });
      const t = Date.now();
      expect(await viaProxy.blobSize(papp, single.config.digest)).toBe(single.config.size);
      expect(Date.now() - t).toBeGreaterThanOrEqual(950);
      proxy.reset();
      proxy.add({ method: 'HEAD', times: 10, action: { kind: 'status', status: 429 } });
      await expectCode(viaProxy.blobSize(papp, single.config.digest), 'REGISTRY_RATE_LIMITED', /429/);
    });

    it('gives up at once on a Retry-After beyond the overall retry time', async () => {
      proxy.reset();
      proxy.add({ method: 'HEAD', times: 1, action: { kind: 'status', status: 429, headers: { 'Retry-After': '3600' } } });
      // fast's maxTotalMs is 20 s: waiting an hour is out, so the 429 is the answer.
      await expectCode(viaProxy.blobSize(papp, single.config.digest), 'REGISTRY_RATE_LIMITED', /429/);
      expect(proxy.count('HEAD')).toBe(1);
    });

    it('retries dropped connections', async () => {
      proxy.reset();
      proxy.add({ method: 'GET', path: /manifests/, times: 2, action: { kind: 'drop' } });
      expect((await viaProxy.resolve(`${proxy.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
      proxy.reset();
      proxy.add({ method: 'GET', times: 10, action: { kind: 'drop' } });
      await expectCode(viaProxy.resolve(`${proxy.host}/demo/app:v1`), 'REGISTRY_UNREACHABLE', proxy.url, /after 4 attempts/);
    });

    it('resumes a blob download cut mid-body with a Range request', async () => {
      const layer = single.layers[1]!;
      proxy.reset();
      proxy.add({ method: 'GET', path: /blobs\/sha256/, action: { kind: 'cut', afterBytes: 100 } });
      const got = await readAll(await viaProxy.fetchBlob(papp, layer));
      expect(got.equals(layer.data)).toBe(true);
      expect(proxy.count('GET', /blobs/)).toBe(2);
      expect(proxy.log.map((e) => e.status)).toEqual([200, 206]);
    });

    it('fails a wrong, truncated or corrupted blob with DIGEST_MISMATCH', async () => {
      const layer = single.layers[1]!;
      const cases: { action: Parameters<FaultProxy['add']>[0]['action']; re: RegExp }[] = [
        { action: { kind: 'replace', body: single.layers[0]!.data }, re: /content digest is|longer than|ended after/ },
        { action: { kind: 'truncate', bytes: 50 }, re: /ended after 50 of/ },
        { action: { kind: 'corrupt' }, re: /content digest is sha256:/ },
      ];
      for (const k of cases) {
        proxy.reset();
        proxy.add({ method: 'GET', path: /blobs\/sha256/, action: k.action });
        const s = await viaProxy.fetchBlob(papp, layer);
        const out = path.join(workDir, 'bad.bin');
        await expectCode(pipeline(s, fs.createWriteStream(out)), 'DIGEST_MISMATCH', k.re, layer.digest, proxy.url);
        proxy.reset();
        proxy.add({ method: 'GET', path: /blobs\/sha256/, action: k.action });
        await expectCode(viaProxy.fetchBlobToFile(papp, layer, out), 'DIGEST_MISMATCH');
        expect(fs.existsSync(out)).toBe(false);
      }
      // verify: false leaves the digest to the reader (the native apply) but still checks the size.
      proxy.reset();
      proxy.add({ method: 'GET', path: /blobs\/sha256/, action: { kind: 'corrupt' } });
      const unchecked = await readAll(await viaProxy.fetchBlob(papp, layer, { verify: false }));
      expect(unchecked.length).toBe(layer.data.length);
      expect(unchecked.equals(layer.data)).toBe(false);
      proxy.reset();
      proxy.add({ method: 'GET', path: /blobs\/sha256/, action: { kind: 'truncate', bytes: 50 } });
      await expectCode(readAll(await viaProxy.fetchBlob(papp, layer, { verify: false })), 'DIGEST_MISMATCH', /ended after 50 of/);
      // Unknown size: the digest alone catches it.
      proxy.reset();
      proxy.add({ method: 'GET', path: /blobs\/sha256/, action: { kind: 'truncate', bytes: 10 } });
      await expectCode(viaProxy.fetchBlobBytes(papp, { digest: layer.digest }), 'DIGEST_MISMATCH', /content digest is/);
      // A manifest fetched by digest is checked too.
      proxy.reset();
      proxy.add({ method: 'GET', path: /manifests\/sha256/, action: { kind: 'corrupt' } });
      await expectCode(viaProxy.getManifest(`${proxy.host}/demo/app@${single.manifest.digest}`), 'DIGEST_MISMATCH', single.manifest.digest);
    });

    it('maps 401, 403 and 404 to typed errors naming the URL', async () => {
      proxy.reset();
      proxy.add({ method: 'GET', action: { kind: 'status', status: 403, body: '{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}' } });
      await expectCode(viaProxy.resolve(`${proxy.host}/demo/app:v1`), 'REGISTRY_DENIED', /HTTP 403/, /DENIED: requested access/, `${proxy.url}/v2/demo/app/manifests/v1`);
      proxy.reset();
      proxy.add({ method: 'GET', action: { kind: 'status', status: 401 } });
      await expectCode(viaProxy.resolve(`${proxy.host}/demo/app:v1`), 'REGISTRY_UNAUTHORIZED', /HTTP 401/, proxy.url);
      proxy.reset();
      proxy.add({ method: 'GET', action: { kind: 'status', status: 404 } });
      await expectCode(viaProxy.resolve(`${proxy.host}/demo/app:v1`), 'REGISTRY_NOT_FOUND', 'demo/app:v1');
    });

    it('resumes chunked uploads and restarts lost upload sessions', async () => {
      const cc = client({ chunkSize: 64 * 1024, monolithicMax: 0 });
      const dst = { registry: proxy.host, repository: 'chunked/faults' };
      try {
        // PATCH dropped before the registry saw it: ask the offset, resend.
        const a = randomBlob(200 * 1024);
        proxy.reset();
        proxy.add({ method: 'PATCH', skip: 1, action: { kind: 'drop' } });
        expect((await cc.pushBlob(dst, a, a.data)).status).toBe('uploaded');
        expect(proxy.count('GET', /uploads\//)).toBe(1);
        expect(proxy.count('POST')).toBe(1);
        expect((await cc.fetchBlobBytes(dst, a)).equals(a.data)).toBe(true);

        // PATCH applied but its answer lost: the offset says it is done; go on.
        const b = randomBlob(200 * 1024);
        proxy.reset();
        proxy.add({ method: 'PATCH', skip: 2, action: { kind: 'drop-after-forward' } });
        // docker-registry 2.8 invalidates the session's state token once the
        // offset moved, so the status query fails and the upload restarts.
        expect((await cc.pushBlob(dst, b, { file: writeTmp(b.data) }, { chunked: true })).status).toBe('uploaded');
        expect(proxy.count('GET', /uploads\//)).toBe(1);
        expect(proxy.count('PUT', /digest=/)).toBe(1);
        expect((await cc.fetchBlobBytes(dst, b)).equals(b.data)).toBe(true);

        // A PATCH cut half-way: whatever the registry kept, the result is right.
        const d = randomBlob(200 * 1024);
        proxy.reset();
        proxy.add({ method: 'PATCH', skip: 1, action: { kind: 'cut-request', afterBytes: 1000 } });
        expect((await cc.pushBlob(dst, d, d.data)).status).toBe('uploaded');
        expect((await cc.fetchBlobBytes(dst, d)).equals(d.data)).toBe(true);

        // The commit PUT fails with 500: the whole upload is restarted.
        const e = randomBlob(100 * 1024);
        proxy.reset();
        proxy.add({ method: 'PUT', path: /digest=/, action: { kind: 'status', status: 500 } });
        expect((await cc.pushBlob(dst, e, e.data)).status).toBe('uploaded');
        expect(proxy.count('POST')).toBe(2);
        expect((await cc.fetchBlobBytes(dst, e)).equals(e.data)).toBe(true);
      } finally {
        cc.close();
      }
    });

    it('streams a large file in one PATCH, resumed or restarted when it fails', async () => {
      const cc = client({ monolithicMax: 64 * 1024 });
      const dst = { registry: proxy.host, repository: 'streamed/faults' };
      try {
        const a = randomBlob(300 * 1024 + 5);
        proxy.reset();
        expect((await cc.pushBlob(dst, a, { file: writeTmp(a.data) })).status).toBe('uploaded');
        expect(proxy.count('PATCH')).toBe(1);
        expect(proxy.count('PUT', /digest=/)).toBe(1);
        expect((await cc.fetchBlobBytes(dst, a)).equals(a.data)).toBe(true);

        // The PATCH dropped before the registry saw it: the session says
        // `Range: 0-0`, which may mean one byte, so a new session takes the
        // whole file (resending from a guess would shift the blob).
        const b = randomBlob(300 * 1024);
        proxy.reset();
        proxy.add({ method: 'PATCH', action: { kind: 'drop' } });
        expect((await cc.pushBlob(dst, b, { file: writeTmp(b.data) })).status).toBe('uploaded');
        expect(proxy.count('GET', /uploads\//)).toBe(1);
        expect(proxy.count('DELETE')).toBe(1);
        expect(proxy.count('POST')).toBe(2);
        expect(proxy.count('PATCH')).toBe(2);
        expect((await cc.fetchBlobBytes(dst, b)).equals(b.data)).toBe(true);

        // Cut half-way: whatever the registry kept, the result is right.
        const d = randomBlob(300 * 1024);
        proxy.reset();
        proxy.add({ method: 'PATCH', action: { kind: 'cut-request', afterBytes: 100_000 } });
        expect((await cc.pushBlob(dst, d, { file: writeTmp(d.data) })).status).toBe('uploaded');
        expect(proxy.count('PATCH')).toBeGreaterThanOrEqual(2);
        expect((await cc.fetchBlobBytes(dst, d)).equals(d.data)).toBe(true);

        // A file that is not what its digest says: the registry refuses the commit.
        const w = randomBlob(200 * 1024);
        await expectCode(cc.pushBlob(dst, { digest: sha256Digest('w'), size: w.data.length }, { file: writeTmp(w.data) }), 'DIGEST_MISMATCH', /refused the content/);
      } finally {
        cc.close();
      }
    });

    it('restarts a monolithic upload whose PUT connection drops', async () => {
      const a = randomBlob(10_000);
      const dst = { registry: proxy.host, repository: 'mono/faults' };
      proxy.reset();
      proxy.add({ method: 'PUT', action: { kind: 'drop' } });
      expect((await viaProxy.pushBlob(dst, a, a.data)).status).toBe('uploaded');
      expect(proxy.count('POST')).toBe(2);
      expect(proxy.count('PUT')).toBe(2);
      expect((await viaProxy.fetchBlobBytes(dst, a)).equals(a.data)).toBe(true);
    });

    it('closes the file of a monolithic upload whose PUT fails', async () => {
      // Large enough that the connection dies before the file is read to its end.
      const a = randomBlob(16 * 1024 * 1024);
      const file = path.join(workDir, 'mono-fd.blob');
      fs.writeFileSync(file, a.data);
      const openFds = () =>
        fs.readdirSync('/proc/self/fd').filter((fd) => {
          try {
            return fs.readlinkSync(`/proc/self/fd/${fd}`) === file;
          } catch {
            return false;
          }
        }).length;
      const dst = { registry: proxy.host, repository: 'mono/fds' };
      proxy.reset();
      proxy.add({ method: 'PUT', times: 3, action: { kind: 'drop' } });
      expect((await viaProxy.pushBlob(dst, a, { file })).status).toBe('uploaded');
      expect(proxy.count('PUT')).toBe(4);
      // Let the destroyed streams' close callbacks run.
      await new Promise((r) => setTimeout(r, 50));
      expect(openFds()).toBe(0);
    });
  });
});

// ---------------------------------------------------------------------------

describe('basic auth registry', () => {
  let reg: TestRegistry;
  const registry = useRegistry({ mode: 'basic', users: { alice: 'secret', bob: 'hunter2' } }, (r) =>
    skopeoCopy(layoutDir, 'v1', `${r.host}/demo/app:v1`, { creds: 'alice:secret' }),
  );
  beforeEach(() => {
    reg = registry();
  });

  it('pulls and pushes with -u credentials, sending them up front after the first 401', async () => {
    const c = client({ credentials: { userPass: 'alice:secret', dockerConfig: false } });
    const repo = { registry: reg.host, repository: 'demo/app' };
    expect((await c.resolve(`${reg.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
    expect((await c.fetchBlobBytes(repo, single.config)).equals(single.config.data)).toBe(true);
    const b = randomBlob(5000);
    expect((await c.pushBlob({ registry: reg.host, repository: 'demo/pushed' }, b, b.data)).status).toBe('uploaded');
    expect(c.stats.authRetries).toBe(1);
    c.close();
  });

  it("dumps each request and response with --http-dump, credentials redacted", async () => {
    const lines: string[] = [];
    const dump = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
        done();
      },
    });
    const c = registryClientFrom({ 'plain-http': true, user: 'alice:secret', 'http-dump': true }, dump);
    expect((await c.resolve(`${reg.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
    await c.close();
    const recs = lines.map((l) => JSON.parse(l) as { event: string; status?: number; headers?: Record<string, unknown> });
    const responses = recs.filter((r) => r.event === 'http.response');
    // The 401 with its challenge, then the manifest.
    expect(responses.map((r) => r.status)).toEqual([401, 200]);
    expect(String(responses[0]!.headers!['www-authenticate'])).toMatch(/^Basic realm=/);
    expect(responses[1]!.headers!['docker-content-digest']).toEqual([single.manifest.digest]);
    const sent = recs.filter((r) => r.event === 'http.request').map((r) => r.headers!.authorization);
    expect(sent).toEqual([undefined, '<redacted>']);
    expect(lines.join('\n')).not.toContain(Buffer.from('alice:secret').toString('base64'));
  });

  it('follows blob redirects to storage, without sending it the credentials', async () => {
    // The registry sends blob reads to its "storage": a plain registry holding
    // the same blobs, behind a proxy that logs what it gets.
    const storageReg = await startRegistry({ mode: 'plain' });
    const front = await startFaultProxy(reg.url);
    const storage = await startFaultProxy(storageReg.url);
    const c = client({ credentials: { userPass: 'alice:secret', dockerConfig: false }, retry: { maxAttempts: 2, baseDelayMs: 10 } });
    try {
      const layer = single.layers[1]!;
      await client().pushBlob({ registry: storageReg.host, repository: 'demo/app' }, layer, layer.data);
      const repo = { registry: front.host, repository: 'demo/app' };
      const blobPath = new RegExp(`/blobs/${layer.digest}$`);
      const toStorage = { kind: 'status' as const, status: 307, headers: { Location: `${storage.url}/v2/demo/app/blobs/${layer.digest}` } };
      front.add({ method: ['GET', 'HEAD'], path: blobPath, times: 100, action: toStorage });

      // The registry's 401 for the manifest: from then on the client sends alice's credentials.
      await c.resolve(`${front.host}/demo/app:v1`);
      expect((await c.fetchBlobBytes(repo, layer)).equals(layer.data)).toBe(true);
      expect((await c.fetchBlobRange(repo, layer.digest, 10, 20)).equals(layer.data.subarray(10, 30))).toBe(true);
      expect(await c.blobSize(repo, layer.digest)).toBe(layer.size);
      const atFront = front.log.filter((e) => blobPath.test(e.path) && e.status === 307);
      const atStorage = storage.log.filter((e) => blobPath.test(e.path));
      expect(atFront.length).toBe(3);
      expect(atFront.every((e) => e.authorized)).toBe(true);
      expect(atStorage.map((e) => [e.method, e.status, e.authorized])).toEqual([
        ['GET', 200, false],
        ['GET', 206, false],
        ['HEAD', 200, false],
      ]);

      // A storage failure is retried from the registry's URL.
      storage.add({ method: 'GET', path: blobPath, action: { kind: 'status', status: 503 } });
      expect((await c.fetchBlobBytes(repo, layer)).equals(layer.data)).toBe(true);

      // A redirect loop, and a redirect with nowhere to go, fail naming the URL.
      storage.add({ method: 'GET', path: blobPath, times: 100, action: toStorage });
      await expectCode(c.fetchBlobBytes(repo, layer), 'REGISTRY_ERROR', 'more than 10 redirects', storage.url);
      storage.reset();
      front.reset();
      front.add({ method: 'GET', path: blobPath, action: { kind: 'status', status: 302 } });
      await expectCode(c.fetchBlobBytes(repo, layer), 'REGISTRY_ERROR', '302 without a Location', front.url);
    } finally {
      c.close();
      await front.close();
      await storage.close();
      await storageReg.stop();
    }
  });

  it('reads credentials from DOCKER_CONFIG', async () => {
    const dir = fs.mkdtempSync(path.join(workDir, 'dc-'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('bob:hunter2').toString('base64') } } }));
    const prev = process.env.DOCKER_CONFIG;
    process.env.DOCKER_CONFIG = dir;
    try {
      const c = client({ credentials: {} });
      expect((await c.resolve(`${reg.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
      c.close();
    } finally {
      if (prev === undefined) delete process.env.DOCKER_CONFIG;
      else process.env.DOCKER_CONFIG = prev;
    }
  });

  it('fails with REGISTRY_UNAUTHORIZED without or with wrong credentials', async () => {
    const none = client();
    await expectCode(none.resolve(`${reg.host}/demo/app:v1`), 'REGISTRY_UNAUTHORIZED', reg.url, 'pull manifest', /UNAUTHORIZED/);
    none.close();
    const wrong = client({ credentials: { userPass: 'alice:nope', dockerConfig: false } });
    await expectCode(wrong.resolve(`${reg.host}/demo/app:v1`), 'REGISTRY_UNAUTHORIZED', /HTTP 401/);
    wrong.close();
  });
});

// ---------------------------------------------------------------------------

describe('token auth registry', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({
      mode: 'token',
      users: { alice: 'secret', reader: 'r', banned: 'b' },
      token: {
        forbidden: ['banned'],
        grant: (g) => (g.user === 'alice' ? g.actions : g.actions.filter((a) => a === 'pull')),
      },
    });
    await skopeoCopy(layoutDir, 'v1', `${reg.host}/demo/app:v1`, { creds: 'alice:secret' });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('pulls anonymously with a pull token', async () => {
    const c = client();
    expect((await c.resolve(`${reg.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
    expect(reg.token!.requests.at(-1)).toEqual({ user: undefined, scopes: ['repository:demo/app:pull'], service: 'overlaybd-test-registry' });
    c.close();
  });

  it('caches tokens per scope and asks for push and mount scopes', async () => {
    const c = client({ credentials: { userPass: 'alice:secret', dockerConfig: false } });
    const repo = { registry: reg.host, repository: 'demo/app' };
    const n0 = reg.token!.requests.length;
    await c.resolve(`${reg.host}/demo/app:v1`);
    await c.fetchBlobBytes(repo, single.layers[0]!);
    await c.fetchBlobBytes(repo, single.layers[1]!);
    await c.blobSize(repo, single.config.digest);
    expect(reg.token!.requests.length - n0).toBe(1);
    expect(c.auth.tokenRequests).toBe(1);

    const dst = { registry: reg.host, repository: 'team/copy' };
    const r = await c.pushBlob(dst, single.layers[0]!, single.layers[0]!.data, { mountFrom: 'demo/app' });
    expect(r.status).toBe('mounted');
    const scopes = reg.token!.requests.map((q) => q.scopes.join(' '));
    expect(scopes).toContain('repository:team/copy:pull,push');
    expect(scopes).toContain('repository:demo/app:pull repository:team/copy:pull,push');
    const b = randomBlob(3000);
    expect((await c.pushBlob(dst, b, b.data)).status).toBe('uploaded');
    for (const blob of [single.config, single.layers[1]!]) {
      expect((await c.pushBlob(dst, blob, blob.data, { mountFrom: 'demo/app' })).status).toBe('mounted');
    }
    const d = await c.pushManifest(dst, single.manifest.data, MediaTypes.ociManifest, 'copied');
    expect(d.digest).toBe(single.manifest.digest);
    expect(reg.token!.requests.slice(n0).every((q) => q.user === 'alice')).toBe(true);
    // pull; push; pull+mount: three scope sets, each fetched once.
    expect(c.auth.tokenRequests).toBe(3);
    c.close();
  });

  it('renews a token when expires_in has passed, and reads access_token', async () => {
    const o = reg.token!.options;
    // expires_in 3 s: the client keeps it for 1.5 s (half, as the 10 s margin is larger).
    o.expiresIn = 3;
    o.accessTokenField = true;
    try {
      const c = client({ credentials: { userPass: 'alice:secret', dockerConfig: false } });
      await c.resolve(`${reg.host}/demo/app:v1`);
      await c.resolve(`${reg.host}/demo/app:v1`);
      expect(c.auth.tokenRequests).toBe(1);
      await new Promise((r) => setTimeout(r, 1700));
      await c.resolve(`${reg.host}/demo/app:v1`);
      expect(c.auth.tokenRequests).toBe(2);
      c.close();
    } finally {
      delete o.expiresIn;
      delete o.accessTokenField;
    }
  });

  it('maps refusals: anonymous push, read-only user push, banned user, wrong password', async () => {
    const b = randomBlob(1000);
    const dst = { registry: reg.host, repository: 'demo/app' };
    const anon = client();
    await expectCode(anon.pushBlob(dst, b, b.data), 'REGISTRY_UNAUTHORIZED', /start upload|check blob/, reg.url);
    anon.close();
    const reader = client({ credentials: { userPass: 'reader:r', dockerConfig: false } });
    expect((await reader.resolve(`${reg.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
    await expectCode(reader.pushBlob(dst, b, b.data), 'REGISTRY_DENIED', /start upload/, /insufficient|UNAUTHORIZED|401/);
    reader.close();
    const banned = client({ credentials: { userPass: 'banned:b', dockerConfig: false } });
    await expectCode(banned.resolve(`${reg.host}/demo/app:v1`), 'REGISTRY_DENIED', /token request/, /403/, 'banned', 'pull manifest', reg.url);
    banned.close();
    const wrong = client({ credentials: { userPass: 'alice:bad', dockerConfig: false } });
    await expectCode(wrong.resolve(`${reg.host}/demo/app:v1`), 'REGISTRY_UNAUTHORIZED', /token request/, 'alice');
    wrong.close();
  });
});

// ---------------------------------------------------------------------------

describe('TLS registry', () => {
  let reg: TestRegistry;
  let mtls: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'tls' });
    await skopeoCopy(layoutDir, 'v1', `${reg.host}/demo/app:v1`, { certDir: reg.certDir!, tlsVerify: true });
    mtls = await startRegistry({ mode: 'tls', clientCerts: true });
  });
  afterAll(async () => {
    await reg?.stop();
    await mtls?.stop();
  });

  const tls = (o: RegistryClientOptions['transport']) => client({ transport: o });

  it('trusts an extra CA file or a certs.d directory', async () => {
    const a = tls({ caFiles: [reg.caFile!] });
    expect((await a.resolve(`${reg.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
    const b = randomBlob(2048);
    expect((await a.pushBlob({ registry: reg.host, repository: 'tls/push' }, b, b.data)).status).toBe('uploaded');
    a.close();
    const d = tls({ certDirs: [path.dirname(reg.certDir!)] });
    expect((await d.resolve(`${reg.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
    d.close();
  });

  it('refuses an unknown CA unless insecure', async () => {
    const s = new RegistryClient({ credentials: { dockerConfig: false }, retry: { maxAttempts: 1 } });
    await expectCode(s.resolve(`${reg.host}/demo/app:v1`), 'REGISTRY_UNREACHABLE', reg.url, /certificate/);
    s.close();
    const i = tls({ insecure: true });
    expect((await i.resolve(`${reg.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
    i.close();
  });

  it('presents a client certificate when the registry requires one', async () => {
    const without = new RegistryClient({ transport: { caFiles: [mtls.caFile!] }, credentials: { dockerConfig: false }, retry: { maxAttempts: 1 } });
    await expectCode(without.headManifest(`${mtls.host}/demo/app:v1`), 'REGISTRY_UNREACHABLE', mtls.url);
    without.close();
    const withCert = tls({ caFiles: [mtls.caFile!], clientCerts: [mtls.clientCert!] });
    expect(await withCert.headManifest(`${mtls.host}/demo/app:v1`)).toBeUndefined();
    withCert.close();
    // certs.d style: client.cert + client.key next to ca.crt.
    const dir = path.join(workDir, 'certs.d', mtls.host);
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(mtls.caFile!, path.join(dir, 'ca.crt'));
    fs.copyFileSync(mtls.clientCert!.cert, path.join(dir, 'client.cert'));
    fs.copyFileSync(mtls.clientCert!.key, path.join(dir, 'client.key'));
    const viaDir = tls({ certDirs: [path.join(workDir, 'certs.d')] });
    expect(await viaDir.headManifest(`${mtls.host}/demo/app:v1`)).toBeUndefined();
    viaDir.close();
  });
});
