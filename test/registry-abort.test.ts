/**
 * Cancelling registry calls with an AbortSignal, against a real
 * docker-registry behind the fault proxy: a stalled download, a response
 * that never comes and a long Retry-After are all cut short, the call
 * rejects with the signal's reason, and the connection is closed.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, sha256Digest, type RepoLocator } from '../lib/registry/index.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

let reg: TestRegistry;
let proxy: FaultProxy;
let workDir: string;
const blob = crypto.randomBytes(4 * 1024 * 1024);
const desc = { digest: sha256Digest(blob), size: blob.length };
let repo: RepoLocator;

function client(): RegistryClient {
  return new RegistryClient({
    transport: { plainHttp: true },
    credentials: { dockerConfig: false },
    retry: { maxAttempts: 3, baseDelayMs: 10 },
  });
}

/**
 * Waits until the connection that carried the last request matching `method`
 * has closed (the test's own timeout bounds the wait). undici may open a
 * fresh idle connection after an abort; its keep-alive timeout closes that.
 */
async function connectionClosed(method: string): Promise<void> {
  const entry = proxy.log.filter((e) => e.method === method).at(-1);
  expect(entry).toBeDefined();
  while (!entry!.closed) await new Promise((r) => setTimeout(r, 10));
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-abort-test-'));
  reg = await startRegistry({ mode: 'plain' });
  proxy = await startFaultProxy(reg.url);
  repo = { registry: proxy.host, repository: 'demo/abort' };
  const c = client();
  await c.pushBlob({ registry: reg.host, repository: 'demo/abort' }, desc, blob);
  await c.close();
});

afterAll(async () => {
  await proxy?.close();
  await reg?.stop();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

describe('aborting registry calls', () => {
  it('rejects a stalled download with the reason and closes its connection', async () => {
    const c = client();
    proxy.reset();
    proxy.add({ method: 'GET', path: /\/blobs\//, action: { kind: 'stall', afterBytes: 256 * 1024 } });
    const ac = new AbortController();
    const stream = await c.fetchBlob(repo, desc, { signal: ac.signal });
    let got = 0;
    const reason = new Error('stop the download');
    const done = rejection(
      (async () => {
        for await (const chunk of stream) {
          got += (chunk as Buffer).length;
          if (got >= 256 * 1024) ac.abort(reason);
        }
      })(),
    );
    expect(await done).toBe(reason);
    expect(got).toBe(256 * 1024);
    await connectionClosed('GET');
    await c.close();
  });

  it('closes the connection when the reader destroys the stream mid-body', async () => {
    const c = client();
    proxy.reset();
    proxy.add({ method: 'GET', path: /\/blobs\//, action: { kind: 'stall', afterBytes: 64 * 1024 } });
    const stream = await c.fetchBlob(repo, desc);
    let got = 0;
    for await (const chunk of stream) {
      got += (chunk as Buffer).length;
      if (got >= 64 * 1024) break; // ends the iteration: destroys the stream
    }
    expect(stream.destroyed).toBe(true);
    await connectionClosed('GET');
    await c.close();
  });

  it('rejects a request whose answer has not come, and a file download, with the reason', async () => {
    const c = client();
    proxy.reset();
    proxy.add({ method: 'HEAD', action: { kind: 'delay', ms: 60_000 } });
    const ac = new AbortController();
    const p = rejection(c.blobSize(repo, desc.digest, { signal: ac.signal }));
    while (proxy.count('HEAD') === 0) await new Promise((r) => setTimeout(r, 10));
    ac.abort(new Error('no longer needed'));
    expect(((await p) as Error).message).toBe('no longer needed');
    await connectionClosed('HEAD');

    proxy.reset();
    proxy.add({ method: 'GET', path: /\/blobs\//, action: { kind: 'stall', afterBytes: 1000 } });
    const file = path.join(workDir, 'partial.blob');
    const timeout = AbortSignal.timeout(200);
    const err = await rejection(c.fetchBlobToFile(repo, desc, file, { signal: timeout }));
    expect(err).toBe(timeout.reason);
    expect(fs.existsSync(file)).toBe(false);
    await connectionClosed('GET');
    await c.close();
  });

  it('cuts a Retry-After wait short', async () => {
    const c = client();
    proxy.reset();
    // Within the policy's overall time (120 s), so the client waits for it.
    proxy.add({ method: 'GET', action: { kind: 'status', status: 429, headers: { 'Retry-After': '60' } } });
    const ac = new AbortController();
    const p = rejection(c.fetchBlobBytes(repo, desc, { signal: ac.signal }));
    while (proxy.count('GET') === 0) await new Promise((r) => setTimeout(r, 10));
    const reason = new Error('shutting down');
    ac.abort(reason);
    expect(await p).toBe(reason);
    expect(proxy.count('GET')).toBe(1);
    await c.close();
  });

  it('rejects at once when the signal is already aborted, sending nothing', async () => {
    const c = client();
    proxy.reset();
    const reason = new Error('too late');
    const signal = AbortSignal.abort(reason);
    expect(await rejection(c.getManifest({ ...repo, tag: 'v1' }, { signal }))).toBe(reason);
    expect(await rejection(c.pushBlob(repo, desc, blob, { signal }))).toBe(reason);
    expect(proxy.log).toEqual([]);
    await c.close();
  });
});
