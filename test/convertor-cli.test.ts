/**
 * The `convertor` command line: upstream's flags, usage errors, exit
 * codes, structured logs when stderr is not a terminal, and one real
 * conversion against a registry.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../lib/registry/index.js';
import { sampleImages, writeOciLayout } from './helpers/oci-layout.js';
import { skopeoCopy, startRegistry, type TestRegistry } from './helpers/registry.js';

const cli = path.resolve('lib/cli/convertor.ts');

function convertor(args: string[], _cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', cli, ...args], { cwd: path.resolve('.'), timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let work: string;
let reg: TestRegistry;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-convertor-cli-'));
  const layout = path.join(work, 'layout');
  writeOciLayout(layout, { v1: sampleImages().single });
  reg = await startRegistry({ mode: 'plain' });
  await skopeoCopy(layout, 'v1', `${reg.host}/cli/app:v1`);
});

afterAll(async () => {
  await reg?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('convertor CLI', () => {
  it('prints usage with -h and exits 2 on usage errors, naming the flag', async () => {
    const h = await convertor(['-h'], work);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/--overlaybd T/);
    const noRepo = await convertor(['-i', 'v1', '--overlaybd', 'x'], work);
    expect(noRepo.code).toBe(2);
    expect(noRepo.stderr).toMatch(/convertor: USAGE: -r\/--repository is required/);
    const both = await convertor(['-r', 'h:1/a', '-i', 'v1', '-g', 'sha256:' + 'a'.repeat(64), '--overlaybd', 'x'], work);
    expect(both.code).toBe(2);
    const db = await convertor(['-r', 'h:1/a', '-i', 'v1', '--overlaybd', 'x', '--db-type', 'redis'], work);
    expect(db.stderr).toMatch(/--db-type must be sqlite, mysql or none/);
    const vs = await convertor(['-r', 'h:1/a', '-i', 'v1', '--overlaybd', 'x', '--vsize', 'big'], work);
    expect(vs.stderr).toMatch(/--vsize expects a whole number/);
  });

  it('answers ENOTSUP for TurboOCI and for --mkfs=false', async () => {
    const t = await convertor(['-r', 'h:1/a', '-i', 'v1', '--turboOCI', 'x'], work);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/convertor: ENOTSUP: TurboOCI/);
    const m = await convertor(['-r', `${reg.host}/cli/app`, '-i', 'v1', '-o', 'x', '--mkfs=false', '--plain', '--db-type', 'none'], work);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/ENOTSUP: --mkfs=false/);
  });

  it('converts with -o, logs JSON lines per layer stage, and prints the pushed reference', async () => {
    const r = await convertor(
      ['-r', `${reg.host}/cli/app`, '-i', 'v1', '-o', 'v1_obd', '--plain', '--vsize', '1', '--db-type', 'sqlite', '--db-str', path.join(work, 'd.db'), '-d', path.join(work, 'wd')],
      work,
    );
    expect(r.stderr).not.toMatch(/convertor: [A-Z_]+:/);
    expect(r.code).toBe(0);
    const digest = /^(\S+):v1_obd@(sha256:[0-9a-f]{64})$/m.exec(r.stdout);
    expect(digest?.[1]).toBe(`${reg.host}/cli/app`);
    const events = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; layer?: string });
    const names = events.map((e) => e.event);
    for (const e of ['convert.start', 'layer.download.done', 'layer.convert.done', 'layer.upload.done', 'manifest.pushed', 'convert.done']) {
      expect(names).toContain(e);
    }
    expect(events.filter((e) => e.event === 'layer.convert.done').map((e) => e.layer)).toEqual(['default #0', 'default #1']);
    // The work dir is gone unless --reserve.
    expect(fs.existsSync(path.join(work, 'wd'))).toBe(true);
    expect(fs.readdirSync(path.join(work, 'wd'))).toEqual([]);
    const c = new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });
    const m = await c.getManifest(`${reg.host}/cli/app:v1_obd`);
    c.close();
    expect(m.descriptor.digest).toBe(digest?.[2]);
    // Again: a re-tag through the SQLite store.
    const again = await convertor(
      ['-r', `${reg.host}/cli/app`, '-i', 'v1', '--overlaybd', 'v1_obd2', '--plain', '--db-str', path.join(work, 'd.db'), '-d', path.join(work, 'wd')],
      work,
    );
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/"event":"manifest.retagged"/);
    expect(again.stdout).toContain(`:v1_obd2@${digest?.[2]}`);
  });

  it('takes -u credentials and the TLS flags (--cert-dir, --root-ca, --client-cert, --insecure)', async () => {
    const layout = path.join(work, 'layout');
    const basic = await startRegistry({ mode: 'basic' });
    const tls = await startRegistry({ mode: 'tls', clientCerts: true });
    try {
      await skopeoCopy(layout, 'v1', `${basic.host}/auth/app:v1`, { creds: 'alice:secret' });
      const common = ['-i', 'v1', '-o', 'obd', '--vsize', '1', '--db-type', 'none', '-d', path.join(work, 'wd2')];
      const denied = await convertor(['-r', `${basic.host}/auth/app`, '--plain', ...common], work);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toMatch(/REGISTRY_UNAUTHORIZED/);
      const ok = await convertor(['-r', `${basic.host}/auth/app`, '--plain', '-u', 'alice:secret', ...common], work);
      expect(ok.stderr).not.toMatch(/convertor: [A-Z_]+:/);
      expect(ok.code).toBe(0);

      // certs.d-style dir: ca.crt, plus client.cert/client.key for mutual TLS.
      const certDir = path.join(work, 'certs');
      fs.mkdirSync(certDir);
      fs.copyFileSync(tls.caFile!, path.join(certDir, 'ca.crt'));
      fs.copyFileSync(tls.clientCert!.cert, path.join(certDir, 'client.cert'));
      fs.copyFileSync(tls.clientCert!.key, path.join(certDir, 'client.key'));
      await skopeoCopy(layout, 'v1', `${tls.host}/tls/app:v1`, { certDir, tlsVerify: true });
      const untrusted = await convertor(['-r', `${tls.host}/tls/app`, ...common], work);
      expect(untrusted.code).toBe(1);
      expect(untrusted.stderr).toMatch(/REGISTRY_UNREACHABLE|certificate/);
      const viaDir = await convertor(['-r', `${tls.host}/tls/app`, '--cert-dir', certDir, ...common], work);
      expect(viaDir.stderr).not.toMatch(/convertor: [A-Z_]+:/);
      expect(viaDir.code).toBe(0);
      const viaFlags = await convertor(
        ['-r', `${tls.host}/tls/app`, '--root-ca', tls.caFile!, '--client-cert', `${tls.clientCert!.cert}:${tls.clientCert!.key}`, ...common.map((a) => (a === 'obd' ? 'obd2' : a))],
        work,
      );
      expect(viaFlags.code).toBe(0);
      const insecure = await convertor(
        ['-r', `${tls.host}/tls/app`, '--insecure', '--client-cert', `${tls.clientCert!.cert}:${tls.clientCert!.key}`, ...common.map((a) => (a === 'obd' ? 'obd3' : a))],
        work,
      );
      expect(insecure.code).toBe(0);
    } finally {
      await basic.stop();
      await tls.stop();
    }
  });
});
