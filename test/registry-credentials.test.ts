/**
 * Docker's credential helpers (`credsStore`, `credHelpers`) against real
 * docker-registry processes: the helpers are small shell scripts on PATH
 * speaking the docker-credential-* protocol (`get`, server URL on stdin,
 * JSON on stdout, "credentials not found" for anonymous).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { registryClientFrom } from '../lib/cli/registry-flags.js';
import { isOverlaybdError } from '../lib/errors.js';
import { RegistryClient, credentialProvider, readDockerConfig, sha256Digest } from '../lib/registry/index.js';
import { sampleImages, writeOciLayout } from './helpers/oci-layout.js';
import { skopeoCopy, useRegistry, type TestRegistry } from './helpers/registry.js';

const single = sampleImages().single;
let workDir: string;
let layoutDir: string;
let binDir: string;
let prevPath: string | undefined;

/**
 * Writes `docker-credential-<name>`: it answers from `<store>/<url>` files
 * (`:` and `/` in the URL turned into `_`), else "not found", and appends
 * each URL asked for to `<store>/calls`.
 */
function writeHelper(name: string, entries: Record<string, { Username: string; Secret: string }>): string {
  const store = path.join(workDir, `store-${name}`);
  fs.mkdirSync(store, { recursive: true });
  for (const [url, e] of Object.entries(entries)) {
    fs.writeFileSync(path.join(store, url.replace(/[:/]/g, '_')), JSON.stringify({ ServerURL: url, ...e }));
  }
  const script = `#!/bin/sh
[ "$1" = get ] || { echo "unsupported action $1"; exit 1; }
read -r url
printf '%s\\n' "$url" >> '${store}/calls'
f='${store}/'"$(printf %s "$url" | tr ':/' '__')"
if [ -f "$f" ]; then cat "$f"; exit 0; fi
echo "credentials not found in native keychain"
exit 1
`;
  fs.writeFileSync(path.join(binDir, `docker-credential-${name}`), script, { mode: 0o755 });
  return store;
}

function calls(store: string): string[] {
  const f = path.join(store, 'calls');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n') : [];
}

function writeConfig(o: unknown): string {
  const dir = fs.mkdtempSync(path.join(workDir, 'cfg-'));
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify(o));
  return file;
}

function client(configFile: string): RegistryClient {
  return new RegistryClient({
    transport: { plainHttp: true },
    credentials: { dockerConfig: configFile },
    retry: { maxAttempts: 2, baseDelayMs: 10 },
  });
}

beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-credhelper-test-'));
  layoutDir = path.join(workDir, 'layout');
  writeOciLayout(layoutDir, { v1: single });
  binDir = path.join(workDir, 'bin');
  fs.mkdirSync(binDir);
  prevPath = process.env.PATH;
  process.env.PATH = `${binDir}:${prevPath ?? ''}`;
});

afterAll(() => {
  process.env.PATH = prevPath;
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

describe('credential helpers with a basic-auth registry', () => {
  let reg: TestRegistry;
  const registry = useRegistry({ mode: 'basic', users: { alice: 'secret', bob: 'hunter2' } }, (r) =>
    skopeoCopy(layoutDir, 'v1', `${r.host}/demo/app:v1`, { creds: 'alice:secret' }),
  );
  beforeEach(() => {
    reg = registry();
  });

  it('reads credsStore and credHelpers from config.json', () => {
    const file = writeConfig({ credsStore: 'desktop', credHelpers: { 'https://Reg.Example.com/v2/': 'ecr' }, auths: {} });
    const cfg = readDockerConfig(file);
    expect(cfg.credsStore).toBe('desktop');
    expect([...cfg.credHelpers]).toEqual([['reg.example.com', 'ecr']]);
  });

  it('pulls and pushes with credentials from credsStore, asking the helper once per host', async () => {
    const store = writeHelper('store1', { [reg.host]: { Username: 'bob', Secret: 'hunter2' } });
    const c = client(writeConfig({ credsStore: 'store1' }));
    expect((await c.resolve(`${reg.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
    const b = Buffer.from('pushed through a credential helper');
    const r = await c.pushBlob({ registry: reg.host, repository: 'demo/helper' }, { digest: sha256Digest(b) }, b);
    expect(r.status).toBe('uploaded');
    expect(calls(store)).toEqual([reg.host]);
    c.close();
  });

  it('prefers credHelpers[host] over credsStore over auths', async () => {
    writeHelper('good', { [reg.host]: { Username: 'bob', Secret: 'hunter2' } });
    const badStore = writeHelper('bad', { [reg.host]: { Username: 'bob', Secret: 'wrong' } });
    const wrongAuths = { [reg.host]: { auth: Buffer.from('alice:wrong').toString('base64') } };
    const c = client(writeConfig({ credHelpers: { [reg.host]: 'good' }, credsStore: 'bad', auths: wrongAuths }));
    expect((await c.resolve(`${reg.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
    expect(calls(badStore)).toEqual([]);
    c.close();

    const viaStore = client(writeConfig({ credsStore: 'good', auths: wrongAuths }));
    expect((await viaStore.resolve(`${reg.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
    viaStore.close();
  });

  it('goes anonymous when the helper has no credentials for the host, without falling back to auths', async () => {
    const store = writeHelper('empty', {});
    const goodAuths = { [reg.host]: { auth: Buffer.from('alice:secret').toString('base64') } };
    const c = client(writeConfig({ credsStore: 'empty', auths: goodAuths }));
    const err = await c.resolve(`${reg.host}/demo/app:v1`).catch((e: unknown) => e);
    expect(isOverlaybdError(err, 'REGISTRY_UNAUTHORIZED'), String(err)).toBe(true);
    expect(calls(store)).toContain(reg.host);
    c.close();
  });

  it('fails with CONFIG_INVALID naming a helper that is not on PATH', async () => {
    const c = client(writeConfig({ credHelpers: { [reg.host]: 'absent' } }));
    const err = await c.resolve(`${reg.host}/demo/app:v1`).catch((e: unknown) => e);
    expect(isOverlaybdError(err, 'CONFIG_INVALID'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/docker-credential-absent is not on PATH/);
    c.close();
  });

  it('hands Docker Hub helpers the legacy server URL', async () => {
    const store = writeHelper('hub', { 'https://index.docker.io/v1/': { Username: 'hubuser', Secret: 'hubpass' } });
    const provide = credentialProvider({ dockerConfig: writeConfig({ credsStore: 'hub' }) });
    expect(await provide('docker.io')).toEqual({ username: 'hubuser', password: 'hubpass' });
    expect(await provide('other.example')).toBeUndefined();
    expect(calls(store)).toEqual(['https://index.docker.io/v1/', 'other.example']);
  });
});

describe('credential helpers with a token registry', () => {
  let reg: TestRegistry;
  const registry = useRegistry(
    { mode: 'token', users: { alice: 'secret' }, token: { refreshTokens: { 'refresh-alice': 'alice' } } },
    (r) => skopeoCopy(layoutDir, 'v1', `${r.host}/demo/app:v1`, { creds: 'alice:secret' }),
  );
  beforeEach(() => {
    reg = registry();
  });

  it('trades a <token> identity token for access tokens at the realm', async () => {
    writeHelper('idtoken', { [reg.host]: { Username: '<token>', Secret: 'refresh-alice' } });
    const c = client(writeConfig({ credHelpers: { [reg.host]: 'idtoken' } }));
    const n0 = reg.token!.requests.length;
    expect((await c.resolve(`${reg.host}/demo/app:v1`)).descriptor.digest).toBe(single.manifest.digest);
    // Pushing needs alice's grant: an anonymous token would be pull-only.
    const d = await c.pushManifest({ registry: reg.host, repository: 'demo/app' }, single.manifest.data, single.manifest.mediaType, 'v2');
    expect(d.digest).toBe(single.manifest.digest);
    const grants = reg.token!.requests.slice(n0);
    expect(grants.length).toBeGreaterThan(0);
    expect(grants.every((q) => q.user === 'alice')).toBe(true);
    c.close();

    writeHelper('badtoken', { [reg.host]: { Username: '<token>', Secret: 'nope' } });
    const bad = client(writeConfig({ credHelpers: { [reg.host]: 'badtoken' } }));
    const err = await bad.resolve(`${reg.host}/demo/app:v1`).catch((e: unknown) => e);
    expect(isOverlaybdError(err, 'REGISTRY_UNAUTHORIZED'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/identity token/);
    bad.close();
  });

  it("trades ctr's --refresh token the same way, and -u wins over it", async () => {
    const n0 = reg.token!.requests.length;
    const c = registryClientFrom({ 'plain-http': true, refresh: 'refresh-alice' });
    const d = await c.pushManifest({ registry: reg.host, repository: 'demo/app' }, single.manifest.data, single.manifest.mediaType, 'v3');
    expect(d.digest).toBe(single.manifest.digest);
    expect(reg.token!.requests.slice(n0).every((q) => q.user === 'alice')).toBe(true);
    await c.close();

    // A bad refresh token beside -u is not used: the push (alice's grant) goes through.
    const both = registryClientFrom({ 'plain-http': true, user: 'alice:secret', refresh: 'nope' });
    expect((await both.pushManifest({ registry: reg.host, repository: 'demo/app' }, single.manifest.data, single.manifest.mediaType, 'v4')).digest).toBe(
      single.manifest.digest,
    );
    await both.close();
  });
});
