/**
 * containerd's hosts directory (`--hosts-dir`): hosts.toml read as
 * containerd 1.6 reads it, and the client trying mirrors before the server
 * against real docker-registry processes (plain HTTP and TLS).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOverlaybdError } from '../lib/errors.js';
import { defaultHost, hostDirCandidates, parseHostsFile, registryHosts } from '../lib/registry/hosts-dir.js';
import { MediaTypes, RegistryClient, sha256Digest, type RepoLocator } from '../lib/registry/index.js';
import { Prng } from './helpers/prng.js';
import { freePort, startRegistry, type TestRegistry } from './helpers/registry.js';

/** A registry name that resolves nowhere: only a hosts.toml can reach it. */
const NAME = 'registry.obd.test';
let root: string;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-hosts-dir-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function hostsToml(dir: string, registry: string, text: string): void {
  fs.mkdirSync(path.join(dir, registry), { recursive: true });
  fs.writeFileSync(path.join(dir, registry, 'hosts.toml'), text);
}

/** The rejection of `p` (the test fails if it resolves). */
async function failure(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e as Error,
  );
}

describe('hosts.toml', () => {
  const fallback = defaultHost(NAME, 'https');

  it('looks in host_port_, host:port, then _default', () => {
    expect(hostDirCandidates('/h', 'reg.io:5000')).toEqual(['/h/reg.io_5000_', '/h/reg.io:5000', '/h/_default']);
    expect(hostDirCandidates('/h', 'reg.io')).toEqual(['/h/reg.io', '/h/_default']);
  });

  it('lists the hosts in file order, the server last, with their settings', async () => {
    const file = '/etc/containerd/certs.d/docker.io/hosts.toml';
    const hosts = await parseHostsFile(
      `server = "https://registry-1.docker.io"
ca = "root-ca.pem"

[host."http://mirror-b:5000"]
  capabilities = ["PULL"]
  skip_verify = true
  [host."http://mirror-b:5000".header]
    x-one = "a"
    x-two = ["b", "c"]

[host."https://mirror-a/custom/api"]
  capabilities = ["pull", "resolve"]
  override_path = true
  ca = ["/abs/ca.pem", "rel.pem"]
  client = [["c.cert", "c.key"], "both.pem"]

[host."mirror-c/sub"]
`,
      file,
      fallback,
    );
    expect(hosts.map((h) => `${h.scheme}://${h.host}${h.apiRoot}`)).toEqual([
      'http://mirror-b:5000/v2',
      'https://mirror-a/custom/api',
      'https://mirror-c/sub/v2',
      'https://registry-1.docker.io/v2',
    ]);
    expect([...hosts[0]!.capabilities]).toEqual(['pull']);
    expect(hosts[0]!.tls.skipVerify).toBe(true);
    expect(hosts[0]!.headers).toEqual({ 'x-one': 'a', 'x-two': 'b, c' });
    expect([...hosts[1]!.capabilities]).toEqual(['pull', 'resolve']);
    expect(hosts[1]!.tls.ca).toEqual(['/abs/ca.pem', '/etc/containerd/certs.d/docker.io/rel.pem']);
    expect(hosts[1]!.tls.clients).toEqual([
      { cert: '/etc/containerd/certs.d/docker.io/c.cert', key: '/etc/containerd/certs.d/docker.io/c.key' },
      { cert: '/etc/containerd/certs.d/docker.io/both.pem', key: '' },
    ]);
    expect([...hosts[2]!.capabilities].sort()).toEqual(['pull', 'push', 'resolve']);
    // The root's fields are the server's.
    expect(hosts[3]!.tls.ca).toEqual(['/etc/containerd/certs.d/docker.io/root-ca.pem']);
  });

  it('takes the registry itself as the server when the file names none', async () => {
    const hosts = await parseHostsFile('skip_verify = true\n[host."http://m:1"]\ncapabilities = ["pull"]\n', '/x/hosts.toml', fallback);
    expect(hosts.map((h) => `${h.scheme}://${h.host}`)).toEqual(['http://m:1', `https://${NAME}`]);
    expect(hosts[1]!.tls.skipVerify).toBe(true);
  });

  it('names the file and the field that is wrong', async () => {
    const bad = (text: string) => failure(parseHostsFile(text, '/d/hosts.toml', fallback));
    expect((await bad('server = "https://x"\n[host."https://m"]\ncapabilities = ["pull", "delete"]\n')).message).toMatch(
      /\/d\/hosts\.toml.*host.*https:\/\/m.*capabilities.*unknown capability "delete"/,
    );
    expect((await bad('skip_verify = "yes"\n')).message).toMatch(/\/d\/hosts\.toml.*skip_verify/);
    expect((await bad('client = [["a", "b", "c"]]\n')).message).toMatch(/\/d\/hosts\.toml.*client/);
    expect((await bad('server = "https://x\n')).message).toMatch(/\/d\/hosts\.toml: not valid TOML/);
    expect((await bad('server = "http://"\n')).message).toMatch(/\/d\/hosts\.toml: server: "http:\/\/"/);
    for (const e of await Promise.all([bad('skip_verify = 1\n'), bad('[host."https://m"]\nheader = 3\n')])) {
      expect(isOverlaybdError(e) && e.code, e.message).toBe('CONFIG_INVALID');
    }
  });

  it('never fails on a mangled file with anything but CONFIG_INVALID', async () => {
    const good = `server = "https://registry-1.docker.io"\nca = "root.pem"\n[host."http://m:5000"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n  client = [["c.cert", "c.key"]]\n  override_path = false\n  [host."http://m:5000".header]\n    x-a = ["b", "c"]\n`;
    const pieces = ['"', "'", '[', ']', '{', '}', '=', ',', '.', '\n', ' ', '#', 'true', '1', '[[', ']]', 'host', 'http://', '\\', '\u0000'];
    const r = new Prng(Number(process.env.OBD_FUZZ_SEED ?? 11));
    let parsed = 0;
    for (let i = 0; i < 4000; i++) {
      let t = good;
      for (let k = 1 + r.int(3); k > 0; k--) {
        const at = r.int(t.length + 1);
        const cut = r.chance(0.5) ? r.int(6) : 0;
        t = t.slice(0, at) + (r.chance(0.8) ? r.pick(pieces) : '') + t.slice(at + cut);
      }
      try {
        await parseHostsFile(t, '/f/hosts.toml', fallback);
        parsed++;
      } catch (e) {
        if (!isOverlaybdError(e) || e.code !== 'CONFIG_INVALID') throw new Error(`input ${JSON.stringify(t)} threw ${String(e)}`, { cause: e });
        expect(e.message.startsWith('/f/hosts.toml')).toBe(true);
      }
    }
    expect(parsed).toBeGreaterThan(100);
  });

  it("reads a directory without hosts.toml as docker's certs.d, and falls back to _default", async () => {
    const dir = path.join(root, 'certs');
    fs.mkdirSync(path.join(dir, 'reg.io_5000_'), { recursive: true });
    for (const f of ['ca.crt', 'me.cert', 'me.key', 'notes.txt']) fs.writeFileSync(path.join(dir, 'reg.io_5000_', f), '');
    const [h] = await registryHosts(dir, 'reg.io:5000', defaultHost('reg.io:5000', 'https'));
    expect(h!.host).toBe('reg.io:5000');
    expect(h!.tls).toEqual({ ca: [path.join(dir, 'reg.io_5000_', 'ca.crt')], clients: [{ cert: path.join(dir, 'reg.io_5000_', 'me.cert'), key: path.join(dir, 'reg.io_5000_', 'me.key') }] });

    fs.writeFileSync(path.join(dir, 'reg.io_5000_', 'lone.cert'), '');
    expect((await failure(registryHosts(dir, 'reg.io:5000', defaultHost('reg.io:5000', 'https')))).message).toMatch(/lone\.cert has no matching key/);

    expect(await registryHosts(dir, 'other.io', defaultHost('other.io', 'http'))).toEqual([defaultHost('other.io', 'http')]);
    hostsToml(dir, '_default', 'server = "http://everyone:8080"\n');
    expect((await registryHosts(dir, 'other.io', defaultHost('other.io', 'http'))).map((x) => x.host)).toEqual(['everyone:8080']);
  });
});

/** A one-config image under `tag`; `mark` makes its content (and digest) differ per registry. */
async function pushImage(c: RegistryClient, repo: RepoLocator, tag: string, mark: string): Promise<{ manifest: string; config: string }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', mark, rootfs: { type: 'layers', diff_ids: [] } }));
  const cfg = { mediaType: MediaTypes.ociConfig, digest: sha256Digest(config), size: config.length };
  await c.pushBlob(repo, cfg, config);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: cfg, layers: [] }));
  const d = await c.pushManifest(repo, manifest, MediaTypes.ociManifest, tag);
  return { manifest: d.digest, config: cfg.digest };
}

describe('a client with a hosts directory', () => {
  let mirror: TestRegistry;
  let server: TestRegistry;
  const direct = new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });
  const repo = (r: TestRegistry): RepoLocator => ({ registry: r.host, repository: 'app' });
  let onMirror: { manifest: string; config: string };
  let onServer: { manifest: string; config: string };
  let onlyServer: { manifest: string; config: string };

  beforeAll(async () => {
    [mirror, server] = await Promise.all([startRegistry({ mode: 'plain' }), startRegistry({ mode: 'plain' })]);
    onMirror = await pushImage(direct, repo(mirror), 'v1', 'mirror');
    onServer = await pushImage(direct, repo(server), 'v1', 'server');
    onlyServer = await pushImage(direct, repo(server), 'v2', 'only-server');
  }, 60_000);
  afterAll(async () => {
    await direct.close();
    await Promise.all([mirror?.stop(), server?.stop()]);
  });

  function clientFor(toml: string): RegistryClient {
    const dir = fs.mkdtempSync(path.join(root, 'dir-'));
    hostsToml(dir, NAME, toml);
    return new RegistryClient({ hostsDir: dir, credentials: { dockerConfig: false }, retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 10 } });
  }
  const ref = (tag: string) => `${NAME}/app:${tag}`;

  it('resolves on a mirror first, falls back to the server on a 404, and names the registry to the mirror', async () => {
    const c = clientFor(`server = "http://${server.host}"\n[host."http://${mirror.host}"]\n  capabilities = ["pull", "resolve"]\n`);
    try {
      expect((await c.getManifest(ref('v1'))).descriptor.digest).toBe(onMirror.manifest);
      expect((await c.getManifest(ref('v2'))).descriptor.digest).toBe(onlyServer.manifest);
      // A blob the mirror lacks comes from the server.
      const bytes = await c.fetchBlobBytes({ registry: NAME, repository: 'app' }, { digest: onlyServer.config });
      expect(JSON.parse(bytes.toString()).mark).toBe('only-server');
      expect(c.baseUrl(NAME)).toBe(`http://${mirror.host}`);
    } finally {
      await c.close();
    }
    // Neither host is the registry named in the reference, so both are told it.
    expect(fs.readFileSync(mirror.logFile, 'utf8')).toContain(`/v2/app/manifests/v1?ns=${NAME}`);
    expect(fs.readFileSync(server.logFile, 'utf8')).toContain(`/v2/app/manifests/v2?ns=${NAME}`);
  });

  it('does not resolve tags on a pull-only mirror, but pulls digests from it', async () => {
    const c = clientFor(`server = "http://${server.host}"\n[host."http://${mirror.host}"]\n  capabilities = ["pull"]\n`);
    try {
      expect((await c.getManifest(ref('v1'))).descriptor.digest).toBe(onServer.manifest);
      expect((await c.getManifest(`${NAME}/app@${onMirror.manifest}`)).descriptor.digest).toBe(onMirror.manifest);
    } finally {
      await c.close();
    }
  });

  it('passes over a mirror that is down, and reports the first failure when every host fails', async () => {
    // A port nothing listens on (freed just now).
    const dead = `127.0.0.1:${await freePort()}`;
    const c = clientFor(`server = "http://${server.host}"\n[host."http://${dead}"]\n`);
    try {
      expect((await c.getManifest(ref('v1'))).descriptor.digest).toBe(onServer.manifest);
    } finally {
      await c.close();
    }
    const none = clientFor(`server = "http://${dead}"\n[host."http://${mirror.host}"]\n  capabilities = ["pull", "resolve"]\n`);
    try {
      // The mirror says 404 (not a failure), the server cannot be reached: that is the error.
      const e = await failure(none.getManifest(ref('v2')));
      expect(isOverlaybdError(e) && e.code, String(e)).toBe('REGISTRY_UNREACHABLE');
      expect(e.message).toContain(dead);
    } finally {
      await none.close();
    }
  });

  it('pushes to the server only, past a mirror listed first, and refuses a push no host may take', async () => {
    const c = clientFor(`server = "http://${server.host}"\n[host."http://${mirror.host}"]\n  capabilities = ["pull", "resolve"]\n`);
    const blob = crypto.randomBytes(1000);
    const digest = sha256Digest(blob);
    try {
      expect((await c.pushBlob({ registry: NAME, repository: 'pushed' }, { digest, size: blob.length }, blob)).status).toBe('uploaded');
    } finally {
      await c.close();
    }
    expect(c.baseUrl(NAME, 'push')).toBe(`http://${server.host}`);
    expect(await direct.blobExists({ registry: server.host, repository: 'pushed' }, digest)).toBe(true);
    expect(await direct.blobExists({ registry: mirror.host, repository: 'pushed' }, digest)).toBe(false);

    const pullOnly = clientFor(`server = "http://${server.host}"\ncapabilities = ["pull", "resolve"]\n`);
    try {
      const e = await failure(pullOnly.pushBlob({ registry: NAME, repository: 'pushed' }, { digest, size: blob.length }, blob));
      expect(isOverlaybdError(e) && e.code, String(e)).toBe('CONFIG_INVALID');
      expect(e.message).toMatch(/no host in .* may push/);
    } finally {
      await pullOnly.close();
    }
  });
});

describe('hosts.toml TLS settings', () => {
  let reg: TestRegistry;
  const direct = () => new RegistryClient({ transport: { caFiles: [reg.caFile!], clientCerts: [reg.clientCert!] }, credentials: { dockerConfig: false } });
  let pushed: { manifest: string; config: string };

  beforeAll(async () => {
    reg = await startRegistry({ mode: 'tls', clientCerts: true });
    const c = direct();
    pushed = await pushImage(c, { registry: reg.host, repository: 'app' }, 'v1', 'tls');
    await c.close();
  }, 60_000);
  afterAll(() => reg?.stop());

  async function resolveWith(toml: string | undefined, files: Record<string, string>): Promise<string> {
    const dir = fs.mkdtempSync(path.join(root, 'tls-'));
    const hostDir = path.join(dir, `${reg.host.replace(':', '_')}_`);
    fs.mkdirSync(hostDir);
    for (const [name, from] of Object.entries(files)) fs.copyFileSync(from, path.join(hostDir, name));
    if (toml !== undefined) fs.writeFileSync(path.join(hostDir, 'hosts.toml'), toml);
    const c = new RegistryClient({ hostsDir: dir, credentials: { dockerConfig: false }, retry: { maxAttempts: 1 } });
    try {
      return (await c.getManifest(`${reg.host}/app:v1`)).descriptor.digest;
    } finally {
      await c.close();
    }
  }

  it('takes ca and client from hosts.toml, relative to it', async () => {
    const toml = `server = "https://${reg.host}"\nca = "my-ca.pem"\nclient = [["me.cert", "me.key"]]\n`;
    expect(await resolveWith(toml, { 'my-ca.pem': reg.caFile!, 'me.cert': reg.clientCert!.cert, 'me.key': reg.clientCert!.key })).toBe(pushed.manifest);
  });

  it('takes a client certificate and key from one PEM file', async () => {
    const both = path.join(root, 'both.pem');
    fs.writeFileSync(both, Buffer.concat([fs.readFileSync(reg.clientCert!.cert), fs.readFileSync(reg.clientCert!.key)]));
    const toml = `server = "https://${reg.host}"\nca = "ca.pem"\nclient = "both.pem"\n`;
    expect(await resolveWith(toml, { 'ca.pem': reg.caFile!, 'both.pem': both })).toBe(pushed.manifest);
  });

  it("takes docker's certs.d files when there is no hosts.toml", async () => {
    expect(await resolveWith(undefined, { 'ca.crt': reg.caFile!, 'me.cert': reg.clientCert!.cert, 'me.key': reg.clientCert!.key })).toBe(pushed.manifest);
  });

  it('fails on an unknown CA without the ca field, and skip_verify passes it', async () => {
    const e = await failure(resolveWith(`server = "https://${reg.host}"\nclient = [["me.cert", "me.key"]]\n`, { 'me.cert': reg.clientCert!.cert, 'me.key': reg.clientCert!.key }));
    expect(String(e)).toMatch(/certificate/i);
    const toml = `server = "https://${reg.host}"\nskip_verify = true\nclient = [["me.cert", "me.key"]]\n`;
    expect(await resolveWith(toml, { 'me.cert': reg.clientCert!.cert, 'me.key': reg.clientCert!.key })).toBe(pushed.manifest);
  });
});
