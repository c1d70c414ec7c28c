/**
 * The live snapshot API (§6.6) on a FUSE + loop device in a running device
 * service: data written through /dev/loopN before the snapshot lands in the
 * sealed layer, data written after it in the new upper, writes racing the
 * snapshot are all kept, and the config file is replaced. Refused requests
 * name what is wrong and leave the device working, its config untouched.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitLayer, createLayer, openImage } from '../lib/index.js';
import { DeviceService } from '../lib/device/service.js';
import { spawnTool } from './helpers/cli.js';
import { tempDir } from './helpers/vectors.js';

const MiB = 1 << 20;
const VSIZE = 64 * MiB;
const block = (byte: number) => Buffer.alloc(4096, byte);

let tmp: { dir: string; cleanup: () => void };
let lower: string;
let global: string;
let socket: string;
let port: number;
const p = (name: string) => path.join(tmp.dir, name);

async function makeUpper(name: string): Promise<{ data: string; index: string }> {
  const u = { data: p(`${name}.data`), index: p(`${name}.index`) };
  await createLayer({ ...u, virtualSize: VSIZE });
  return u;
}

function writeConfig(name: string, cfg: unknown): string {
  fs.writeFileSync(p(name), JSON.stringify(cfg));
  return p(name);
}

/** GET on the control socket or, with `tcp`, on serviceConfig.address. */
function get(url: string, tcp = false): Promise<{ status: number; body: { success: boolean; message: string; code?: string } }> {
  const where = tcp ? { host: '127.0.0.1', port } : { socketPath: socket };
  return new Promise((resolve, reject) => {
    http
      .get({ ...where, path: url }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      })
      .on('error', reject);
  });
}

/** Runs a tool without blocking this process's event loop (the service lives here). */
async function tool(name: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const t = spawnTool(name, args);
  const code = await new Promise<number | null>((r) => t.child.once('exit', (c) => r(c)));
  return { code, stderr: t.stderr };
}

const q = (id: string, config: string) => `/snapshot?dev_id=${encodeURIComponent(id)}&config=${encodeURIComponent(config)}`;

/** Writes through the block device and flushes it to the image. */
function devWrite(dev: string, data: Buffer, off: number): void {
  const fd = fs.openSync(dev, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, off);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function devRead(dev: string, off: number, len: number): Buffer {
  // Direct I/O: past the block device's page cache, through the loop to the image.
  const args = [`if=${dev}`, 'iflag=direct', 'bs=4096', `skip=${off / 4096}`, `count=${len / 4096}`, 'status=none'];
  return execFileSync('dd', args, { maxBuffer: len + 4096 });
}

async function readImage(spec: Parameters<typeof openImage>[0], off: number, len: number): Promise<Buffer> {
  const img = await openImage(spec);
  try {
    return await img.read(off, len);
  } finally {
    await img.close();
  }
}

beforeAll(async () => {
  tmp = tempDir('obd-snap-');
  const base = await makeUpper('base');
  const img = await openImage({ lowers: [], upper: base });
  await img.write(block(0x4c), 100 * 4096); // 'L' in the lower
  await img.close();
  lower = p('lower.commit');
  await commitLayer({ data: base.data, index: base.index, out: lower });
  socket = p('ctl.sock');
  port = 20000 + (process.pid % 20000);
  global = writeConfig('overlaybd.json', {
    cacheConfig: { cacheDir: p('cache') },
    logConfig: { logPath: p('overlaybd.log') },
    enableAudit: false,
    controlSocket: socket,
    serviceConfig: { enable: true, address: `http://127.0.0.1:${port}` },
  });
});

afterAll(() => tmp?.cleanup());

describe('live snapshot API', () => {
  it('seals the upper under live writes and continues on the new one', async () => {
    const u1 = await makeUpper('u1');
    const u2 = await makeUpper('u2');
    const config = writeConfig('config.v1.json', { lowers: [{ file: lower }], upper: u1 });
    const next = { lowers: [{ file: lower }, { file: u1.data }], upper: u2 };
    const nextFile = writeConfig('next.json', next);
    const svc = await DeviceService.start({ global });
    try {
      const dev = await svc.attach(config);
      devWrite(dev.path, block(0x41), 0); // 'A' before
      // A writer races the snapshot: every one of its writes must survive.
      let racing = true;
      const racer = (async () => {
        let n = 0;
        for (; racing || n < 8; n++) {
          devWrite(dev.path, block(0x10 + (n % 64)), (200 + (n % 64)) * 4096);
          await new Promise((r) => setImmediate(r));
        }
        return n;
      })();
      const r = await get(q(dev.id, nextFile));
      racing = false;
      const raced = await racer;
      expect(r).toMatchObject({ status: 200, body: { success: true } });
      devWrite(dev.path, block(0x42), 2 * 4096); // 'B' after
      expect(devRead(dev.path, 0, 3 * 4096)).toEqual(Buffer.concat([block(0x41), block(0), block(0x42)]));
      expect(JSON.parse(fs.readFileSync(config, 'utf8'))).toEqual(next);
      expect(fs.existsSync(nextFile)).toBe(false);
      await svc.detach(dev.id);

      const fresh = { lowers: [lower, u1.data], upper: u2 };
      expect(await readImage(fresh, 0, 3 * 4096)).toEqual(Buffer.concat([block(0x41), block(0), block(0x42)]));
      expect(await readImage(fresh, 100 * 4096, 4096)).toEqual(block(0x4c));
      const racedArea = await readImage(fresh, 200 * 4096, 64 * 4096);
      for (let i = 0; i < Math.min(raced, 64); i++) {
        // Block i last got write n = the largest n < raced with n % 64 == i.
        const n = raced - 1 - ((raced - 1 - i) % 64);
        expect(racedArea.subarray(i * 4096, (i + 1) * 4096)).toEqual(block(0x10 + (n % 64)));
      }
      const sealed = { lowers: [lower, u1.data] };
      expect(await readImage(sealed, 0, 3 * 4096)).toEqual(Buffer.concat([block(0x41), block(0), block(0)]));
      expect(await readImage(sealed, 100 * 4096, 4096)).toEqual(block(0x4c));
      // The replaced config is what a restarted service attaches.
      const again = await svc.attach(config);
      expect(devRead(again.path, 0, 3 * 4096)).toEqual(Buffer.concat([block(0x41), block(0), block(0x42)]));
      await svc.detach(again.id);
    } finally {
      await svc.close();
    }
  }, 120_000);

  it('refuses bad requests by name and leaves the device as it was', async () => {
    const u1 = await makeUpper('v1');
    const u2 = await makeUpper('v2');
    const cfg = { lowers: [{ file: lower }], upper: u1 };
    const config = writeConfig('dev.json', cfg);
    const roConfig = writeConfig('ro.json', { lowers: [{ file: lower }] });
    const svc = await DeviceService.start({ global });
    try {
      const dev = await svc.attach(config);
      const ro = await svc.attach(roConfig);
      devWrite(dev.path, block(0x61), 0);
      const good = { lowers: [{ file: lower }, { file: u1.data }], upper: u2 };
      const cases: [string, number, string, RegExp, boolean?][] = [
        ['/snapshot?dev_id=' + dev.id, 400, 'EINVAL', /lacks config/],
        ['/snapshot?config=x', 400, 'EINVAL', /lacks dev_id/],
        [q('nope', writeConfig('n1.json', good)), 404, 'ENOENT', /no device with dev_id nope/],
        [q(dev.id, p('missing.json')), 400, 'ENOENT', /cannot read .*missing\.json/],
        [q(dev.id, writeConfig('n2.json', { ...good, lowers: [{ file: u1.data }] })), 400, 'EINVAL', /has 1 lowers; it must keep the device's 1/],
        [q(dev.id, writeConfig('n3.json', { ...good, lowers: [{ file: u2.data }, { file: u1.data }] })), 400, 'EINVAL', /lowers\[0\] differs/],
        [q(dev.id, writeConfig('n4.json', { ...good, lowers: [{ file: lower }, { file: lower }] })), 400, 'EINVAL', /lowers\[1\] must be just \{"file": ".*v1\.data"\}/],
        [q(dev.id, writeConfig('n5.json', { lowers: good.lowers })), 400, 'EINVAL', /has no upper/],
        [q(dev.id, writeConfig('n6.json', { ...good, upper: u1 })), 400, 'EINVAL', /new upper must differ/],
        [q(dev.id, writeConfig('n7.json', { ...good, upper: { data: p('gone.data'), index: p('gone.index') } })), 400, 'ENOENT', /gone\.data/, true],
        [q(ro.id, writeConfig('n8.json', { lowers: [{ file: lower }, { file: u1.data }], upper: u2 })), 400, 'EROFS', /no upper layer/],
      ];
      for (const [url, status, code, message, tcp] of cases) {
        const r = await get(url, tcp);
        expect({ url, ...r }).toMatchObject({ url, status, body: { success: false, code, message: expect.stringMatching(message) } });
      }
      const other = await get('/other', true);
      expect(other.status).toBe(404);
      // A second service cannot take the API's address: it says so and leaves nothing behind.
      const second = p('second.sock');
      await expect(DeviceService.start({ global, socket: second })).rejects.toThrow(/EADDRINUSE|serviceConfig\.address http:\/\/127\.0\.0\.1:\d+/);
      expect(fs.existsSync(second)).toBe(false);
      // Unchanged: the config, and the device still writes to its upper.
      expect(JSON.parse(fs.readFileSync(config, 'utf8'))).toEqual(cfg);
      devWrite(dev.path, block(0x62), 4096);
      expect(devRead(dev.path, 0, 2 * 4096)).toEqual(Buffer.concat([block(0x61), block(0x62)]));
      // overlaybd snapshot: the control socket's client.
      const unknown = await tool('overlaybd', ['snapshot', '--socket', socket, 'nope', p('n1.json')]);
      expect(unknown).toEqual({ code: 1, stderr: expect.stringMatching(/^overlaybd snapshot: ENOENT: no device with dev_id nope/) });
      const ok = await tool('overlaybd', ['snapshot', '--socket', socket, dev.id, writeConfig('n9.json', good)]);
      expect(ok).toEqual({ code: 0, stderr: '' });
      expect(JSON.parse(fs.readFileSync(config, 'utf8'))).toEqual(good);
      devWrite(dev.path, block(0x63), 2 * 4096);
      await svc.detach(dev.id);
      await svc.detach(ro.id);
      // The refused requests changed nothing: the sealed upper holds both writes made before the CLI's snapshot.
      expect(await readImage({ lowers: [lower, u1.data] }, 0, 3 * 4096)).toEqual(Buffer.concat([block(0x61), block(0x62), block(0)]));
      expect(await readImage({ lowers: [lower, u1.data], upper: u2 }, 0, 3 * 4096)).toEqual(
        Buffer.concat([block(0x61), block(0x62), block(0x63)]),
      );
    } finally {
      await svc.close();
    }
  }, 120_000);
});

// The loop devices are gone once the service closed.
afterAll(() => {
  const left = execFileSync('losetup', ['-a'], { encoding: 'utf8' });
  expect(left).not.toContain(tmp.dir);
});
