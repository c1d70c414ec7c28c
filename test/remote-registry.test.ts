/**
 * Native registry blob reads (cpp/remote through cpp/tools/remote_get)
 * against a real docker-registry behind the fault proxy: every fault ends in
 * the right bytes after bounded retries, or in the right error code naming
 * the digest and the byte range, in time. Auth: remote-auth.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest } from '../lib/registry/index.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { R, R_HEADER, R_TEXT, remoteGet, TestBlob } from './helpers/remote-get.js';

const b = new TestBlob();
const { digest } = b;
const SIZE = b.size;
const REPO = b.repo;
const BLOB_PATH = b.pathRe;
const args = b.args.bind(b);
const blobUrl = b.repoBlobUrl.bind(b);
const expectBytes = b.expectBytes.bind(b);
const expectError = b.expectError.bind(b);
const push = (reg: TestRegistry, userPass?: string) => b.push(reg, userPass);


describe('plain registry behind the fault proxy', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await push(reg);
    proxy = await startFaultProxy(reg.url, { keepAlive: true });
  });
  afterAll(async () => {
    await proxy?.close();
    await reg?.stop();
  });
  afterEach(() => proxy.reset());

  it('reads ranges, clips at the end, and keeps its connection alive', async () => {
    const ranges: [number, number][] = [[0, 4096], R, [SIZE - 100, 4096], [SIZE, 10], [123457, 1], [0, SIZE]];
    const r = await remoteGet(args(proxy.url), ranges);
    expectBytes(r, ranges);
    expect(r.open.size).toBe(SIZE);
    // Discovery, then one GET per read with bytes to fetch (each answer checks the size).
    expect(proxy.count('GET', BLOB_PATH)).toBe(1 + ranges.length - 1);
    expect(proxy.connections()).toBe(1);
    expect(r.fetches.every((f) => f.attempt === 1 && f.ok)).toBe(true);
  });

  it('reads from many threads at once', async () => {
    const ranges: [number, number][] = Array.from({ length: 32 }, (_, i) => [i * 30011, 20000 + i]);
    const r = await remoteGet([...args(proxy.url), '--threads', '8'], ranges);
    expectBytes(r, ranges);
    // A pool of keep-alive handles: far fewer connections than reads.
    expect(proxy.connections()).toBeLessThanOrEqual(9);
  });

  it('gets every range right from many threads while faults hit some of them', async () => {
    // Six faults in all and eight tries per read: every read must end well.
    proxy.add({ method: 'GET', range: /^bytes=[1-9]/, times: 2, action: { kind: 'cut', afterBytes: 3000 } });
    proxy.add({ method: 'GET', range: /^bytes=[1-9]/, times: 2, action: { kind: 'status', status: 502 } });
    proxy.add({ method: 'GET', range: /^bytes=[1-9]/, times: 2, action: { kind: 'truncate', bytes: 10 } });
    const ranges: [number, number][] = Array.from({ length: 24 }, (_, i) => [1 + i * 40009, 30000 + i]);
    const r = await remoteGet([...args(proxy.url), '--threads', '6', '--retries', '8'], ranges);
    expectBytes(r, ranges);
    expect(r.fetches.filter((f) => !f.ok)).toHaveLength(6);
  });

  it('retries a body shorter than asked', async () => {
    proxy.add({ method: 'GET', range: R_HEADER, action: { kind: 'truncate', bytes: 1000 } });
    const r = await remoteGet(args(proxy.url), [R]);
    expectBytes(r, [R]);
    expect(r.fetches.filter((f) => f.offset === 4096).map((f) => [f.attempt, f.ok])).toEqual([[1, false], [2, true]]);
  });

  it('retries a body longer than asked', async () => {
    proxy.add({ method: 'GET', range: R_HEADER, action: { kind: 'extend', bytes: 10 } });
    const r = await remoteGet(args(proxy.url), [R]);
    expectBytes(r, [R]);
    expect(r.fetches.filter((f) => f.offset === 4096).map((f) => f.ok)).toEqual([false, true]);
  });

  it('takes its range out of a 200 with the whole blob', async () => {
    proxy.add({ method: 'GET', path: BLOB_PATH, times: 10, action: { kind: 'whole' } });
    const ranges: [number, number][] = [R, [SIZE - 10, 10]];
    const r = await remoteGet(args(proxy.url), ranges);
    expectBytes(r, ranges);
    expect(r.fetches.every((f) => f.ok && f.status === 200)).toBe(true);
  });

  it('retries a wrong Content-Range, never returning its bytes', async () => {
    proxy.add({ method: 'GET', range: R_HEADER, action: { kind: 'headers', headers: { 'content-range': `bytes 0-65535/${SIZE}` } } });
    const r = await remoteGet(args(proxy.url), [R]);
    expectBytes(r, [R]);
    proxy.reset();
    proxy.add({ method: 'GET', range: R_HEADER, times: 3, action: { kind: 'headers', headers: { 'content-range': `bytes 0-65535/${SIZE}` } } });
    expectError(await remoteGet(args(proxy.url), [R]), 'EIO', R_TEXT, /Content-Range/, /after 3 tries/);
  });

  it('retries a connection reset in the middle of the body', async () => {
    proxy.add({ method: 'GET', range: R_HEADER, action: { kind: 'cut', afterBytes: 5000 } });
    const r = await remoteGet(args(proxy.url), [R]);
    expectBytes(r, [R]);
  });

  it('retries 5xx, then fails with EIO naming digest, range and tries', async () => {
    proxy.add({ method: 'GET', range: R_HEADER, times: 2, action: { kind: 'status', status: 503 } });
    expectBytes(await remoteGet(args(proxy.url), [R]), [R]);
    proxy.reset();
    proxy.add({ method: 'GET', range: R_HEADER, times: 3, action: { kind: 'status', status: 503 } });
    const r = await remoteGet(args(proxy.url), [R]);
    expectError(r, 'EIO', R_TEXT, /HTTP 503 after 3 tries/);
    expect(r.fetches.filter((f) => f.offset === 4096)).toHaveLength(3);
  });

  it('honours Retry-After within the time limit, and gives up with EBUSY past it', async () => {
    proxy.add({ method: 'GET', range: R_HEADER, action: { kind: 'status', status: 429, headers: { 'Retry-After': '1' } } });
    const r = await remoteGet(args(proxy.url), [R]);
    expectBytes(r, [R]);
    expect(r.reads[0]!.ms).toBeGreaterThanOrEqual(900);
    proxy.reset();
    proxy.add({ method: 'GET', range: R_HEADER, times: 5, action: { kind: 'status', status: 429, headers: { 'Retry-After': '60' } } });
    const busy = await remoteGet(args(proxy.url), [R]);
    expectError(busy, 'EBUSY', R_TEXT, /Retry-After 60 s/);
    expect(busy.reads[0]!.ms).toBeLessThan(2000);
  });

  it('fails a stalled body with ETIMEDOUT at the read time limit', async () => {
    proxy.add({ method: 'GET', range: R_HEADER, times: 5, action: { kind: 'stall', afterBytes: 100 } });
    const r = await remoteGet([...args(proxy.url), '--timeout-ms', '500'], [R]);
    expectError(r, 'ETIMEDOUT', R_TEXT);
    expect(r.reads[0]!.ms).toBeLessThan(2500);
  });

  it('opens with ENOENT for a missing blob and EPERM for 403; a wrong config size fails the first read with EINVAL', async () => {
    const missing = sha256Digest('not pushed');
    const r = await remoteGet(['--url', blobUrl(proxy.url), '--digest', missing, '--timeout-ms', '5000']);
    expect(r.open.code).toBe('ENOENT');
    expect(r.open.message).toContain(missing);
    // With the size given, open asks nothing (a warm cache needs no registry); the first read checks it.
    const wrong = await remoteGet(['--url', blobUrl(proxy.url), '--digest', digest, '--size', String(SIZE + 1), '0:4096']);
    expect(wrong.open.ok).toBe(true);
    expect(wrong.reads[0]!.code).toBe('EINVAL');
    expect(wrong.reads[0]!.message).toMatch(new RegExp(`${SIZE + 1}.*${SIZE}`));
    // A read past the registry's end (416) says the same.
    const past = await remoteGet(['--url', blobUrl(proxy.url), '--digest', digest, '--size', String(SIZE + 1), `${SIZE}:1`]);
    expect(past.reads[0]!.code).toBe('EINVAL');
    expect(past.reads[0]!.message).toMatch(new RegExp(`${SIZE + 1}.*${SIZE}`));
    proxy.add({ method: 'GET', path: BLOB_PATH, times: 100, action: { kind: 'status', status: 403 } });
    // Without a size, open asks the registry (bytes 0-0); with one, the first read does.
    const denied = await remoteGet(['--url', blobUrl(proxy.url), '--digest', digest, '--timeout-ms', '5000']);
    expect(denied.open.code).toBe('EPERM');
    expect(denied.open.message).toMatch(/bytes 0-0.*HTTP 403/);
    const deniedRead = await remoteGet(args(proxy.url, ['0:4096']));
    expect(deniedRead.open.ok).toBe(true);
    expect(deniedRead.reads[0]!.code).toBe('EPERM');
  });

  it('reads a redirect target without auth, and finds it again after it fails', async () => {
    // proxy answers the registry URL with a redirect to a second proxy (the "storage").
    const storage = await startFaultProxy(reg.url);
    try {
      proxy.add({ method: 'GET', path: BLOB_PATH, times: 100, action: { kind: 'status', status: 307, headers: { Location: `${storage.url}/v2/${REPO}/blobs/${digest}` } } });
      storage.add({ method: 'GET', range: R_HEADER, action: { kind: 'status', status: 500 } });
      const ranges: [number, number][] = [[0, 100], R];
      const r = await remoteGet(args(proxy.url), ranges);
      expectBytes(r, ranges);
      // Discovery once, then again after the failed read invalidated the resolved URL.
      expect(proxy.count('GET', BLOB_PATH)).toBe(2);
      expect(storage.count('GET', BLOB_PATH)).toBe(3); // [0,100], R failed, R
    } finally {
      await storage.close();
    }
  });
});
