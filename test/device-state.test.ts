/** The device service's restart record (lib/device/state.ts): round trip, absent file, damaged file. */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readDeviceState, stateFileFor, writeDeviceState, type DeviceRecord } from '../lib/device/state.js';
import { tempDir } from './helpers/vectors.js';

const tmp = tempDir('obd-state-');
afterAll(() => tmp.cleanup());

describe('device state file', () => {
  it('sits beside the control socket', () => {
    expect(stateFileFor('/run/overlaybd/overlaybd.sock')).toBe('/run/overlaybd/overlaybd.devices.json');
    expect(stateFileFor('/x/ctl')).toBe('/x/ctl.devices.json');
  });

  it('round-trips records and replaces the file whole', () => {
    const file = path.join(tmp.dir, 'a', 'svc.devices.json');
    expect(readDeviceState(file)).toEqual([]);
    const recs: DeviceRecord[] = [
      { id: 'ublk-3', frontend: 'ublk', config: '/c/config.v1.json', path: '/dev/ublkb3', devId: 3 },
      { id: 'fuse-ab', frontend: 'fuse', config: '/c/other.json', path: '/dev/loop7' },
    ];
    writeDeviceState(file, recs);
    expect(readDeviceState(file)).toEqual(recs);
    writeDeviceState(file, []);
    expect(readDeviceState(file)).toEqual([]);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['svc.devices.json']); // no temp file left
  });

  it('names a damaged file', () => {
    const file = path.join(tmp.dir, 'bad.json');
    fs.writeFileSync(file, '{"version":1,"devices":[{"id":"x","frontend":"nbd"}]}');
    expect(() => readDeviceState(file)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining(file) }));
    fs.writeFileSync(file, 'not json');
    expect(() => readDeviceState(file)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});
