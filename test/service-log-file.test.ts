/**
 * The device service's log file (overlaybd.json logConfig, §5.2): the
 * level filters what reaches it, it rotates at logSizeMB keeping
 * logRotateNum old files, and a path it cannot open leaves stderr logging.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { serviceLogger } from '../lib/cli/serve.js';
import { LogFile } from '../lib/log-file.js';
import { parseGlobalConfig } from '../lib/service/global-config.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-log-file-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const records = (file: string) =>
  fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: string; event: string; time: string });

describe('service log file', () => {
  it('writes JSON records at the configured level, creating its directory', () => {
    const file = path.join(dir, 'a', 'b', 'overlaybd.log');
    const { log, file: f } = serviceLogger(parseGlobalConfig({ logConfig: { logPath: file, logLevel: 2 } }));
    log.info('quiet.info');
    log.warn('loud.warn', { n: 1 });
    log.child({ device: 'd1' }).error('loud.error');
    f!.close();
    expect(records(file).map((r) => [r.level, r.event])).toEqual([['warn', 'loud.warn'], ['error', 'loud.error']]);
    expect(records(file)[1]).toMatchObject({ device: 'd1' });
  });

  it('takes the legacy logPath and logLevel when logConfig names no path', () => {
    const file = path.join(dir, 'legacy.log');
    const { log, file: f } = serviceLogger(parseGlobalConfig({ logPath: file, logLevel: 0 }));
    log.debug('legacy.debug');
    f!.close();
    expect(records(file).map((r) => r.event)).toEqual(['legacy.debug']);
  });

  it('rotates past the size, keeping rotateNum old files, no record split', () => {
    const file = path.join(dir, 'rot.log');
    const f = LogFile.open(file, { sizeBytes: 1000, rotateNum: 2 });
    const line = (i: number) => `${JSON.stringify({ i, pad: 'x'.repeat(80) })}\n`;
    for (let i = 0; i < 40; i++) f.write(line(i));
    f.close();
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('rot.log')).sort()).toEqual(['rot.log', 'rot.log.1', 'rot.log.2']);
    const seen = ['rot.log.2', 'rot.log.1', 'rot.log'].flatMap((n) => {
      const text = fs.readFileSync(path.join(dir, n), 'utf8');
      expect(text.length).toBeLessThanOrEqual(1000);
      return text.trim().split('\n').map((l) => (JSON.parse(l) as { i: number }).i);
    });
    // The newest records, in order, with nothing lost between the kept files.
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, k) => 40 - seen.length + k));
    expect(seen.at(-1)).toBe(39);
  });

  it('appends to an existing file and rotates it once full', () => {
    const file = path.join(dir, 'old.log');
    fs.writeFileSync(file, 'x'.repeat(900) + '\n');
    const f = LogFile.open(file, { sizeBytes: 1000, rotateNum: 1 });
    f.write('y'.repeat(200) + '\n');
    f.close();
    expect(fs.readFileSync(`${file}.1`, 'utf8')).toBe('x'.repeat(900) + '\n');
    expect(fs.readFileSync(file, 'utf8')).toBe('y'.repeat(200) + '\n');
  });

  it('reports a path it cannot open and logs to stderr alone', () => {
    const blocker = path.join(dir, 'not-a-dir');
    fs.writeFileSync(blocker, '');
    const written: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (written.push(String(chunk)), true));
    try {
      const { log, file } = serviceLogger(parseGlobalConfig({ logConfig: { logPath: path.join(blocker, 'x.log') } }));
      expect(file).toBeUndefined();
      log.info('still.logging');
    } finally {
      spy.mockRestore();
    }
    expect(written.join('')).toMatch(/service\.log_file_unusable.*not-a-dir\/x\.log.*EEXIST/);
    expect(written.join('')).toMatch(/still\.logging/);
  });
});
