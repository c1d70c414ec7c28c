/**
 * P2P reads (§6.1): with p2pConfig's address reachable, data reads go to
 * `<address>/<actual url>` (a real nginx proxying to a real docker-registry
 * here) and return the same bytes; with nothing listening there, reads go to
 * the registry itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startP2pProxy, type P2pProxy } from './helpers/p2p-proxy.js';
import { freePort, startRegistry, type TestRegistry } from './helpers/registry.js';
import { remoteGet, TestBlob } from './helpers/remote-get.js';

const b = new TestBlob(256 << 10);

describe('P2P proxy', () => {
  let reg: TestRegistry;
  let p2p: P2pProxy;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'plain' });
    await b.push(reg);
    p2p = await startP2pProxy();
  });
  afterAll(async () => {
    await p2p?.stop();
    await reg?.stop();
  });

  it('reads through the proxy when it is reachable', async () => {
    const ranges: [number, number][] = [[0, 4096], [4096, 65536], [b.size - 10, 100]];
    const r = await remoteGet(b.args(reg.url, ['--p2p', p2p.address]), ranges);
    b.expectBytes(r, ranges);
    expect(r.open.p2p).toBe(true);
    expect(r.fetches.every((f) => f.p2p)).toBe(true);
    const blobUrl = `${b.repoBlobUrl(reg.url)}/${b.digest}`;
    // Each read went through nginx to the registry (its answer checks the size).
    expect(p2p.requests()).toEqual([
      `GET /accelerator/${blobUrl} 206 bytes=0-4095`,
      `GET /accelerator/${blobUrl} 206 bytes=4096-69631`,
      `GET /accelerator/${blobUrl} 206 bytes=${b.size - 10}-${b.size - 1}`,
    ]);
  });

  it('reads the registry directly when the proxy is not reachable', async () => {
    const before = p2p.requests().length;
    const port = await freePort();
    // The whole blob URL works as --url too (layer::LayerRef::url).
    const r = await remoteGet(
      ['--url', `${b.repoBlobUrl(reg.url)}/${b.digest}`, '--digest', b.digest, '--p2p', `http://127.0.0.1:${port}/accelerator`, '--connect-timeout-ms', '500'],
      [[100, 1000]],
    );
    b.expectBytes(r, [[100, 1000]]);
    expect(r.open.p2p).toBe(false);
    expect(r.fetches.some((f) => f.p2p)).toBe(false);
    expect(p2p.requests()).toHaveLength(before);
  });
});
