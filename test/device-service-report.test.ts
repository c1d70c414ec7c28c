/**
 * What the device service reports about each attach, as upstream's
 * overlaybd-tcmu does: the config's resultFile (`success`, or
 * `failed:<reason>` whether the image or a later frontend step failed),
 * structured log records for attach, detach and their failures, and the
 * Prometheus exporter of its image service while it runs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callService, DeviceService, type DeviceInfo } from '../lib/device/index.js';
import { createLogger } from '../lib/log.js';
import { localBookworm } from './helpers/remote-image.js';
import { tempDir } from './helpers/vectors.js';

interface LogRecord {
  event: string;
  level: string;
  [k: string]: unknown;
}

let tmp: ReturnType<typeof tempDir>;
let svc: DeviceService;
let lowers: string[];
let port: number;
const log: LogRecord[] = [];

function writeConfig(name: string, config: object): { config: string; result: string } {
  const dir = path.join(tmp.dir, name);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.v1.json');
  // resultFile is relative to the config's directory, as upstream's paths are.
  fs.writeFileSync(file, JSON.stringify({ ...config, resultFile: 'result' }));
  return { config: file, result: path.join(dir, 'result') };
}

const attach = async (config: string) => (await callService(svc.socket, 'POST', '/attach', { config })) as DeviceInfo;
const events = (name: string) => log.filter((r) => r.event === name);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

beforeAll(async () => {
  tmp = tempDir('obd-svc-report-');
  lowers = (await localBookworm('lz4')).layers;
  port = await freePort();
  const global = path.join(tmp.dir, 'overlaybd.json');
  fs.writeFileSync(
    global,
    JSON.stringify({ cacheConfig: { cacheDir: path.join(tmp.dir, 'cache') }, enableAudit: false, exporterConfig: { enable: true, port } }),
  );
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) log.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  svc = await DeviceService.start({ global, socket: path.join(tmp.dir, 'ctl.sock'), logger: createLogger({ json: true, stream, level: 'debug' }) });
}, 600_000);

afterAll(async () => {
  await svc?.close();
  spawnSync('umount', ['-l', path.join(tmp.dir, 'mnt')]);
  tmp?.cleanup();
});

describe('device service reports', () => {
  it('writes success to the resultFile and logs the attach and detach', async () => {
    const c = writeConfig('ok', { lowers: lowers.map((file) => ({ file })) });
    const d = await attach(c.config);
    expect(fs.readFileSync(c.result, 'utf8')).toBe('success');
    expect(events('device.attached').at(-1)).toMatchObject({ level: 'info', id: d.id, path: d.path, config: c.config, frontend: 'fuse' });
    expect(events('service.started')[0]).toMatchObject({ socket: svc.socket, runDir: svc.runDir });

    // A mounted device is refused, and the refusal is logged with its code.
    const mnt = path.join(tmp.dir, 'mnt');
    fs.mkdirSync(mnt, { recursive: true });
    execFileSync('mount', ['-t', 'ext4', '-o', 'ro', d.path, mnt]);
    try {
      await expect(callService(svc.socket, 'POST', '/detach', { device: d.path })).rejects.toMatchObject({ code: 'EBUSY' });
      expect(events('device.detach_failed').at(-1)).toMatchObject({ level: 'warn', path: d.path, code: 'EBUSY' });
    } finally {
      execFileSync('umount', [mnt]);
    }
    await callService(svc.socket, 'POST', '/detach', { device: d.id });
    expect(events('device.detached').at(-1)).toMatchObject({ id: d.id, path: d.path });
  });

  it('writes failed:<reason> when the image cannot be opened, and logs it', async () => {
    const missing = path.join(tmp.dir, 'no-such-layer');
    const c = writeConfig('missing', { lowers: [{ file: missing }] });
    const err = (await attach(c.config).then(
      () => undefined,
      (e: unknown) => e,
    )) as { code: string; message: string };
    expect(err).toMatchObject({ code: 'ENOENT', message: expect.stringContaining('lowers[0]') });
    expect(fs.readFileSync(c.result, 'utf8')).toMatch(/^failed:.*no-such-layer/);
    expect(events('device.attach_failed').at(-1)).toMatchObject({ level: 'error', config: c.config, code: err.code, frontend: 'fuse' });
  });

  it('writes failed:<reason> when a frontend step fails after the image opened', async () => {
    const c = writeConfig('late', { lowers: lowers.map((file) => ({ file })) });
    // The run dir replaced by a file: the FUSE mount point cannot be made.
    fs.rmSync(svc.runDir, { recursive: true, force: true });
    fs.writeFileSync(svc.runDir, '');
    try {
      await expect(attach(c.config)).rejects.toMatchObject({ code: 'EIO', message: expect.stringContaining('FUSE mount point') });
      expect(fs.readFileSync(c.result, 'utf8')).toMatch(/^failed:cannot make the FUSE mount point /);
      expect(events('device.attach_failed').at(-1)).toMatchObject({ config: c.config, code: 'EIO' });
    } finally {
      fs.rmSync(svc.runDir);
    }
    // The image it opened was closed again: the same config attaches now.
    const d = await attach(c.config);
    expect(fs.readFileSync(c.result, 'utf8')).toBe('success');
    await callService(svc.socket, 'POST', '/detach', { device: d.path });
  });

  it("serves its image service's metrics while it runs", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^OverlayBD_Alive\{node="[^"]+"\} 1$/m);
    expect(text).toMatch(/^OverlayBD_Count\{node="[^"]+",type="pread"\} \d+$/m);
  });
});
