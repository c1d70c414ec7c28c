/**
 * overlaybd-snapshotter's Snapshots service over its socket, as containerd's
 * proxy client sees it: containerd's storage semantics and status codes,
 * filters, crash cleanup, config errors, metrics, SIGTERM.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSnapshotterConfig } from '../lib/snapshotter/config.js';
import { parseFilter } from '../lib/snapshotter/filters.js';
import { infoAdaptor, type Info } from '../lib/snapshotter/metastore.js';
import { runTool } from './helpers/cli.js';
import { startSnapshotter, type TestSnapshotter } from './helpers/snapshotter.js';

const code = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    return grpc.status[(e as grpc.ServiceError).code];
  }
  return 'OK';
};

describe('overlaybd-snapshotter gRPC semantics', () => {
  let s: TestSnapshotter;
  beforeAll(async () => {
    s = await startSnapshotter({
      exporterConfig: { enable: true, port: 0 },
      deviceSocket: path.join(os.tmpdir(), `obd-no-device-service-${process.pid}.sock`),
      mirrorRegistry: [{ host: 'mirror.test:5000', insecure: true }],
    });
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('prepares, commits and chains with decimal ids and overlay mounts', async () => {
    expect(fs.statSync(path.dirname(s.socket)).mode & 0o777).toBe(0o700);
    expect(fs.statSync(s.root).mode & 0o777).toBe(0o700);
    const m1 = await s.call<{ mounts: { type: string; source: string; options: string[] }[] }>('Prepare', { key: 'a-active', labels: { x: '1' } });
    expect(m1.mounts).toEqual([{ type: 'bind', source: `${s.root}/snapshots/1/fs`, target: '', options: ['rw', 'rbind'] }]);
    fs.writeFileSync(`${s.root}/snapshots/1/fs/f`, 'x'.repeat(10000));
    await s.call('Commit', { name: 'a', key: 'a-active', labels: { y: '2' } });
    const st = await s.call<{ info: { name: string; kind: string; labels: Record<string, string> } }>('Stat', { key: 'a' });
    expect(st.info).toMatchObject({ name: 'a', kind: 'COMMITTED', labels: { y: '2' } });
    expect(await code(s.call('Stat', { key: 'a-active' }))).toBe('NOT_FOUND');
    const u = await s.call<{ size: string; inodes: string }>('Usage', { key: 'a' });
    expect(Number(u.size)).toBeGreaterThanOrEqual(10000);
    expect(u.inodes).toBe('2');

    await s.call('Prepare', { key: 'b-active', parent: 'a' });
    await s.call('Commit', { name: 'b', key: 'b-active' });
    const m3 = await s.call<{ mounts: { type: string; options: string[] }[] }>('Prepare', { key: 'c', parent: 'b' });
    expect(m3.mounts[0]!.type).toBe('overlay');
    expect(m3.mounts[0]!.options).toContain(`lowerdir=${s.root}/snapshots/2/fs:${s.root}/snapshots/1/fs`);
    expect(m3.mounts[0]!.options).toContain(`upperdir=${s.root}/snapshots/3/fs`);
    const v1 = await s.call<{ mounts: { type: string; options: string[] }[] }>('View', { key: 'v1', parent: 'a', labels: { 'containerd.io/snapshot/overlaybd.writable': 'dir', keep: 'me' } });
    // An OCI parent never gets a writable device, and the label goes (upstream's buildkit compatibility).
    expect((await s.call<{ info: { labels: Record<string, string> } }>('Stat', { key: 'v1' })).info.labels).toEqual({ keep: 'me' });
    expect(v1.mounts).toEqual([{ type: 'bind', source: `${s.root}/snapshots/1/fs`, target: '', options: ['ro', 'rbind'] }]);
    expect(fs.existsSync(`${s.root}/snapshots/4/work`)).toBe(false);
    const mm = await s.call<{ mounts: unknown[] }>('Mounts', { key: 'c' });
    expect(mm.mounts).toEqual(m3.mounts);
  });

  it("answers containerd's error kinds", async () => {
    expect(await code(s.call('Prepare', { key: 'c', parent: 'b' }))).toBe('ALREADY_EXISTS');
    expect(await code(s.call('Prepare', { key: 'd', parent: 'nope' }))).toBe('NOT_FOUND');
    expect(await code(s.call('Prepare', { key: 'd', parent: 'c' }))).toBe('INVALID_ARGUMENT');
    expect(await code(s.call('Commit', { name: 'b', key: 'c' }))).toBe('ALREADY_EXISTS');
    expect(await code(s.call('Commit', { name: 'z', key: 'v1' }))).toBe('FAILED_PRECONDITION');
    expect(await code(s.call('Commit', { name: 'z', key: 'nope' }))).toBe('NOT_FOUND');
    expect(await code(s.call('Mounts', { key: 'a' }))).toBe('FAILED_PRECONDITION');
    expect(await code(s.call('Remove', { key: 'a' }))).toBe('FAILED_PRECONDITION');
    expect(await code(s.call('Remove', { key: 'nope' }))).toBe('NOT_FOUND');
    expect(await code(s.call('Update', { info: { name: 'a' }, updateMask: { paths: ['parent'] } }))).toBe('INVALID_ARGUMENT');
    expect(await code(s.list(['labels.=='])) ).toBe('INVALID_ARGUMENT');
  });

  it('refuses a TurboOCI layer at its Prepare, naming it, and creates nothing', async () => {
    for (const key of ['turbo-oci', 'fastoci']) {
      const labels = {
        'containerd.io/snapshot.ref': `chain-${key}`,
        'containerd.io/snapshot/overlaybd/blob-digest': `sha256:${'cd'.repeat(32)}`,
        'containerd.io/snapshot/overlaybd/blob-size': '4096',
        [`containerd.io/snapshot/overlaybd/${key}/target-digest`]: `sha256:${'ef'.repeat(32)}`,
      };
      const err = await s.call('Prepare', { key: `extract-${key}`, labels }).then(() => undefined, (e: { code: number; details: string }) => e);
      expect(err?.code).toBe(12); // UNIMPLEMENTED: containerd's unpack fails with this message
      expect(err?.details).toMatch(new RegExp(`layer chain-${key} is a TurboOCI layer \\(target sha256:(ef){32}\\), which this snapshotter cannot run yet`));
    }
    const names = (await s.list()).map((i) => i.name);
    expect(names).not.toContain('extract-turbo-oci');
    expect(names).not.toContain('extract-fastoci');
  });

  it('updates labels by field path', async () => {
    const up = (labels: Record<string, string>, paths: string[]) =>
      s.call<{ info: { labels: Record<string, string> } }>('Update', { info: { name: 'a', labels }, updateMask: { paths } });
    expect((await up({ k1: 'v1', k2: 'v2' }, ['labels.k1'])).info.labels).toEqual({ y: '2', k1: 'v1' });
    expect((await up({}, ['labels.y'])).info.labels).toEqual({ k1: 'v1' });
    expect((await up({ n: '1' }, ['labels'])).info.labels).toEqual({ n: '1' });
    expect((await up({ m: '2' }, [])).info.labels).toEqual({ m: '2' });
  });

  it('lists with containerd filters (comma AND, several OR)', async () => {
    const names = async (f: string[]) => (await s.list(f)).map((i) => i.name).sort();
    expect(await names([])).toEqual(['a', 'b', 'c', 'v1']);
    expect(await names(['kind==committed'])).toEqual(['a', 'b']);
    expect(await names(['parent==a'])).toEqual(['b', 'v1']);
    expect(await names(['parent==a,kind==view'])).toEqual(['v1']);
    expect(await names(['kind==view', 'name~=^c$'])).toEqual(['c', 'v1']);
    expect(await names(['labels."m"==2'])).toEqual(['a']);
    expect(await names(['labels.m'])).toEqual(['a']);
    expect(await names(['labels.m!=2'])).toEqual(['b', 'c', 'v1']);
  });

  it('parses quoted fields, regexes and dotted label keys', () => {
    const info: Info = { name: 'n', parent: '', kind: 'ACTIVE', labels: { 'containerd.io/snapshot.ref': 'sha256:ab', a: 'x y' }, createdUs: 0, updatedUs: 0 };
    const a = infoAdaptor(info);
    expect(parseFilter('labels."containerd.io/snapshot.ref"==sha256:ab')(a)).toBe(true);
    expect(parseFilter('labels.a=="x y"')(a)).toBe(true);
    expect(parseFilter('name~=/^n$/,kind==active')(a)).toBe(true);
    expect(parseFilter('labels."containerd.io/snapshot.ref"~=/^sha256:[a-f]+$/')(a)).toBe(true);
    for (const bad of ['a==', 'a=b', ',', 'a==b,', '"x', 'name~=(']) expect(() => parseFilter(bad), bad).toThrow(/filter/);
  });

  it('removes a leaf and its dir; a parent only without children', async () => {
    await s.call('Remove', { key: 'c' });
    expect(fs.existsSync(`${s.root}/snapshots/3`)).toBe(false);
    await s.call('Remove', { key: 'v1' });
    await s.call('Remove', { key: 'b' });
    await s.call('Remove', { key: 'a' });
    expect(await s.list()).toEqual([]);
    expect(fs.readdirSync(`${s.root}/snapshots`)).toEqual([]);
  });

  it('commits a remote layer with its config.v1.json; a failed attach leaves nothing', async () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    const labels = {
      'containerd.io/snapshot.ref': 'chain-1',
      'containerd.io/snapshot/image-ref': 'mirror.test:5000/lib/app:v1',
      'containerd.io/snapshot/overlaybd/blob-digest': digest,
      'containerd.io/snapshot/overlaybd/blob-size': '4096',
    };
    expect(await code(s.call('Prepare', { key: 'extract-1', labels }))).toBe('ALREADY_EXISTS');
    const cfg = JSON.parse(fs.readFileSync(`${s.root}/snapshots/5/block/config.v1.json`, 'utf8'));
    expect(cfg).toEqual({ repoBlobUrl: 'http://mirror.test:5000/v2/lib/app/blobs', lowers: [{ digest, size: 4096, dir: `${s.root}/snapshots/5/fs` }], upper: {}, resultFile: `${s.root}/snapshots/5/block/init-debug.log` });
    expect(fs.readFileSync(`${s.root}/snapshots/5/image_ref`, 'utf8')).toBe('mirror.test:5000/lib/app:v1');
    expect(await code(s.call('Prepare', { key: 'extract-2', labels }))).toBe('ALREADY_EXISTS');
    expect((await s.list()).map((i) => i.name)).toEqual(['chain-1']);

    // No device service answers: the rootfs Prepare fails and is rolled back, dir and all.
    const err = await s.call('Prepare', { key: 'rootfs', parent: 'chain-1' }).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.UNKNOWN);
    expect((err as grpc.ServiceError).details).toMatch(/no device service answers/);
    expect((await s.list()).map((i) => i.name)).toEqual(['chain-1']);
    expect(fs.readdirSync(`${s.root}/snapshots`)).toEqual(['5']);

    // An acceleration (trace) layer is unpacked into fs/ and added as the top lower; a rootfs on it replays it.
    const accel = await s.call<{ mounts: unknown[] }>('Prepare', {
      key: 'extract-accel',
      parent: 'chain-1',
      labels: { 'containerd.io/snapshot.ref': 'chain-accel', 'containerd.io/snapshot/overlaybd/acceleration-layer': 'yes' },
    });
    expect(accel.mounts).toEqual([{ type: 'bind', source: `${s.root}/snapshots/6/fs`, target: '', options: ['rw', 'rbind'] }]);
    await s.call('Commit', { name: 'chain-accel', key: 'extract-accel', labels: { 'containerd.io/snapshot/overlaybd/acceleration-layer': 'yes' } });
    const accelCfg = () => JSON.parse(fs.readFileSync(`${s.root}/snapshots/6/block/config.v1.json`, 'utf8'));
    expect(accelCfg().lowers).toEqual([...cfg.lowers, { dir: `${s.root}/snapshots/6/fs` }]);
    await s.call('Prepare', { key: 'rootfs', parent: 'chain-accel' }).catch(() => {});
    expect(accelCfg().accelerationLayer).toBe(true);
    await s.call('Remove', { key: 'chain-accel' });
    await s.call('Remove', { key: 'chain-1' });
  });

  it('exports upstream metric names', async () => {
    const url = /"url":"([^"]+)"/.exec(s.stderr())![1]!.replace('0.0.0.0', '127.0.0.1');
    const body = await (await fetch(url)).text();
    expect(body).toMatch(/grpc_latency_seconds_bucket\{le="0.0001",function="Prepare"\}/);
    expect(body).toMatch(/grpc_error_count\{function="Remove"\} 2/);
    expect(body).toMatch(/^is_alive 1$/m);
    expect(body).toContain('process_cpu_seconds_total');
  });

  it('removes orphan dirs at start and keeps metadata across a restart', async () => {
    await s.call('Prepare', { key: 'keep' });
    await s.kill();
    fs.mkdirSync(`${s.root}/snapshots/new-123/fs`, { recursive: true });
    fs.mkdirSync(`${s.root}/snapshots/99`);
    expect(s.stderr()).toContain('snapshotter.stopped');
    const again = await startSnapshotter({ asyncRemove: true }, s.dir);
    try {
      expect(fs.readdirSync(`${s.root}/snapshots`).sort()).toEqual(['7']);
      expect((await again.list()).map((i) => i.name)).toEqual(['keep']);
      await again.call('Prepare', { key: 'next' });
      expect(fs.readdirSync(`${s.root}/snapshots`).sort()).toEqual(['7', '8']);
      // asyncRemove: Remove drops the metadata only; Cleanup removes the dir.
      await again.call('Remove', { key: 'next' });
      expect(fs.readdirSync(`${s.root}/snapshots`).sort()).toEqual(['7', '8']);
      await again.call('Cleanup', {});
      expect(fs.readdirSync(`${s.root}/snapshots`).sort()).toEqual(['7']);
    } finally {
      await again.kill();
    }
  });
});

describe('overlaybd-snapshotter config', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-snap-cfg-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (cfg: unknown) => {
    const f = path.join(dir, 'c.json');
    fs.writeFileSync(f, typeof cfg === 'string' ? cfg : JSON.stringify(cfg));
    return f;
  };
  const load = (cfg: unknown) => () => loadSnapshotterConfig(write(cfg));

  it("fills upstream's defaults and forces ext4 and erofs into turboFsType", () => {
    const c = loadSnapshotterConfig(write({ root: `${dir}/r`, address: `${dir}/s.sock`, turboFsType: ['erofs'], someFutureKey: 1 }));
    expect(c).toMatchObject({
      verbose: 'info',
      rwMode: 'overlayfs',
      autoRemoveDev: false,
      asyncRemove: false,
      writableLayerType: 'append',
      mirrorRegistry: null,
      defaultFsType: 'ext4',
      rootfsQuota: '',
      tenant: -1,
      turboFsType: ['erofs', 'ext4'],
      runtimeType: 'containerd',
      exporterConfig: { enable: false, uriPrefix: '/metrics', port: 9863 },
      deviceSocket: '/run/overlaybd/overlaybd.sock',
      deviceFrontend: 'fuse',
    });
  });

  it('names the bad field', () => {
    expect(load({ root: dir, address: '' })).toThrow(/address: must be set/);
    expect(load({ root: dir, address: `${dir}/s.sock`, exporterConfig: { port: 'x' } })).toThrow(/exporterConfig\.port/);
    expect(load({ root: dir, address: `${dir}/s.sock`, writableLayerType: 'dense' })).toThrow(/writableLayerType/);
    expect(load({ root: dir, address: `${dir}/s.sock`, mirrorRegistry: [{ insecure: true }] })).toThrow(/mirrorRegistry\.0\.host/);
    expect(load('{')).toThrow(/not JSON/);
    expect(() => loadSnapshotterConfig(`${dir}/missing.json`)).toThrow(/missing\.json: cannot read/);
  });

  it('exits 1 naming the error, 2 on bad usage', () => {
    const r = runTool('overlaybd-snapshotter', ['--config', write({ root: dir })]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/CONFIG_INVALID: .*address/);
    expect(runTool('overlaybd-snapshotter', ['a', 'b']).code).toBe(2);
  });
});
