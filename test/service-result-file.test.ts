/**
 * resultFile (§5.1): `success` or `failed:<reason>` with no newline, as
 * upstream writes it, replacing what was there in one rename and leaving
 * no temporary behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeResultFile } from '../lib/service/result-file.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-result-file-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('writeResultFile', () => {
  it('writes success and failed:<reason> exactly', async () => {
    const f = path.join(dir, 'result');
    await writeResultFile(f, { ok: true });
    expect(fs.readFileSync(f, 'utf8')).toBe('success');
    await writeResultFile(f, { ok: false, reason: 'lowers[0]: ENOENT: blob sha256:ab not found' });
    expect(fs.readFileSync(f, 'utf8')).toBe('failed:lowers[0]: ENOENT: blob sha256:ab not found');
    await writeResultFile(f, { ok: true });
    expect(fs.readFileSync(f, 'utf8')).toBe('success');
    expect(fs.readdirSync(dir)).toEqual(['result']);
  });

  it('replaces the file by rename: a reader holding the old one keeps its content', async () => {
    const f = path.join(dir, 'swap');
    await writeResultFile(f, { ok: false, reason: 'x'.repeat(10000) });
    const before = fs.statSync(f).ino;
    const fd = fs.openSync(f, 'r');
    try {
      await writeResultFile(f, { ok: true });
      expect(fs.statSync(f).ino).not.toBe(before);
      expect(fs.readFileSync(fd, 'utf8')).toBe('failed:' + 'x'.repeat(10000));
      expect(fs.readFileSync(f, 'utf8')).toBe('success');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('a missing directory is ENOENT naming the file, with nothing left behind', async () => {
    const f = path.join(dir, 'no', 'such', 'result');
    await expect(writeResultFile(f, { ok: true })).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining(f) });
  });

  it('a directory in the way is an error naming the file, and the temporary is removed', async () => {
    const f = path.join(dir, 'adir');
    fs.mkdirSync(f);
    fs.writeFileSync(path.join(f, 'keep'), '');
    await expect(writeResultFile(f, { ok: true })).rejects.toMatchObject({ message: expect.stringContaining(f) });
    expect(fs.readdirSync(dir).filter((n) => n.includes('adir'))).toEqual(['adir']);
  });
});
