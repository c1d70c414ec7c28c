/**
 * The layer CLIs as a user runs them: upstream's names and flags, exit codes
 * (2 for usage errors, 1 for failures, with `<tool>: <CODE>: message`), and
 * `overlaybd dump` to a file (sparse, also appended or at an offset) and to
 * a pipe, and a quiet exit when the reader of stdout goes away.
 */
import { execFile, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { runTool, toolArgs } from './helpers/cli.js';
import { ROOT, tempDir, vector } from './helpers/vectors.js';

const tmp = tempDir('obd-cli-');
afterAll(tmp.cleanup);
const AB = '570b575961136df2cefebabd440c79f651c49500c5fc0473582a56e98596a1bf';

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

describe('overlaybd-commit / overlaybd-create', () => {
  it('commit with --uuid and -m reproduces upstream A.commit', () => {
    for (const f of ['A.rw.data', 'A.rw.index']) fs.copyFileSync(vector(`lsmt/${f}`), path.join(tmp.dir, f));
    const out = path.join(tmp.dir, 'A.commit');
    const r = runTool('overlaybd-commit', ['--uuid', 'AAAAAAAA-0000-4000-8000-000000000001', '-m', 'vector layer A', path.join(tmp.dir, 'A.rw.data'), path.join(tmp.dir, 'A.rw.index'), out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(sha256(out)).toBe(sha256(vector('lsmt/A.commit')));
    // The output exists: without -f a second commit refuses to replace it.
    const again = runTool('overlaybd-commit', [path.join(tmp.dir, 'A.rw.data'), path.join(tmp.dir, 'A.rw.index'), out]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^overlaybd-commit: EEXIST: .*A\.commit: output exists/);
  });

  it('usage errors name the flag and exit 2', () => {
    const r = runTool('overlaybd-commit', ['--bs', '3', 'a', 'b', 'c']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/USAGE: --bs must be 4, 8, 16, 32 or 64/);
    expect(runTool('overlaybd-commit', ['--bogus']).stderr).toMatch(/Unknown option '--bogus'/);
    expect(runTool('overlaybd-create', ['a', 'b', 'x']).stderr).toMatch(/USAGE: VSIZE_GB expects a whole number, got 'x'/);
    expect(runTool('overlaybd', ['frobnicate']).code).toBe(2);
    // ctr's registry flags, one parser for rpull and record-trace: a client certificate needs its key.
    for (const cmd of [['rpull', '--tlscert', 'c.pem', 'ref'], ['record-trace', '--tlscert', 'c.pem', 'old', 'new']]) {
      const r = runTool('overlaybd', cmd);
      expect(r.code, cmd.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/USAGE: --tlscert and --tlskey go together/);
    }
  });

  it('a bad UUID is refused naming the field', () => {
    const r = runTool('overlaybd-create', ['-u', 'nope', path.join(tmp.dir, 'x.data'), path.join(tmp.dir, 'x.index'), '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/CONFIG_INVALID: .*parentUuid: must be a UUID/);
    expect(fs.existsSync(path.join(tmp.dir, 'x.data'))).toBe(false);
  });
});

describe('overlaybd dump and inspect', () => {
  const config = path.join(tmp.dir, 'config.v1.json');
  fs.writeFileSync(config, JSON.stringify({ lowers: [{ file: vector('lsmt/A.commit') }, { file: vector('lsmt/B.commit') }] }));

  it('dumps to a regular file sparsely', () => {
    const out = path.join(tmp.dir, 'device.img');
    const fd = fs.openSync(out, 'w');
    const r = spawnSync(process.execPath, [...toolArgs('overlaybd'), 'dump', config], { cwd: ROOT, stdio: ['ignore', fd, 'pipe'] });
    fs.closeSync(fd);
    expect(r.status).toBe(0);
    expect(fs.statSync(out).size).toBe(1 << 30);
    expect(fs.statSync(out).blocks * 512).toBeLessThan(8 << 20);
    expect(sha256(out)).toBe(AB);
  });

  it('dumps to a pipe in full', async () => {
    const { stdout } = await promisify(execFile)('bash', ['-c', `node --import tsx lib/cli/overlaybd.ts dump '${config}' | sha256sum`], { cwd: ROOT });
    expect(stdout.split(' ')[0]).toBe(AB);
  });

  /** sha256 of `len` bytes of `file` from `start`. */
  async function sha256Range(file: string, start: number, len: number): Promise<string> {
    const h = crypto.createHash('sha256');
    for await (const chunk of fs.createReadStream(file, { start, end: start + len - 1 })) h.update(chunk as Buffer);
    return h.digest('hex');
  }

  it('appends the device sparsely to a file opened with >>', async () => {
    const out = path.join(tmp.dir, 'appended.img');
    fs.writeFileSync(out, 'existing content\n');
    const r = spawnSync('bash', ['-c', `node --import tsx lib/cli/overlaybd.ts dump '${config}' >> '${out}'`], { cwd: ROOT, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(fs.statSync(out).size).toBe(17 + (1 << 30));
    expect(fs.readFileSync(out).subarray(0, 17).toString()).toBe('existing content\n');
    expect(await sha256Range(out, 17, 1 << 30)).toBe(AB);
    expect(fs.statSync(out).blocks * 512).toBeLessThan(8 << 20);
    fs.rmSync(out);
  });

  it('writes the device at the offset of a descriptor it shares', async () => {
    const out = path.join(tmp.dir, 'framed.img');
    const sh = `{ printf head; node --import tsx lib/cli/overlaybd.ts dump '${config}'; printf tail; } > '${out}'`;
    const r = spawnSync('bash', ['-c', sh], { cwd: ROOT, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const size = 8 + (1 << 30);
    expect(fs.statSync(out).size).toBe(size);
    const fd = fs.openSync(out, 'r');
    const b = Buffer.alloc(4);
    fs.readSync(fd, b, 0, 4, 0);
    expect(b.toString()).toBe('head');
    fs.readSync(fd, b, 0, 4, size - 4);
    expect(b.toString()).toBe('tail');
    fs.closeSync(fd);
    expect(await sha256Range(out, 4, 1 << 30)).toBe(AB);
    fs.rmSync(out);
  });

  it('stops quietly when the reader of stdout goes away', () => {
    // An RW index of 4000 entries: its JSON is far more than a pipe holds.
    const index = path.join(tmp.dir, 'many.index');
    const entries = Buffer.alloc(4000 * 16);
    for (let i = 0; i < 4000; i++) {
      entries.writeBigUInt64LE(BigInt(2 * i) | (1n << 50n), i * 16); // LBA 2i, 1 sector
      entries.writeBigUInt64LE(8n, i * 16 + 8);
    }
    fs.writeFileSync(index, Buffer.concat([fs.readFileSync(vector('lsmt/B.rw.index')).subarray(0, 4096), entries]));
    for (const args of [`inspect '${index}'`, `dump '${config}'`]) {
      const sh = `node --import tsx lib/cli/overlaybd.ts ${args} | head -c 10 > /dev/null; exit \${PIPESTATUS[0]}`;
      const r = spawnSync('bash', ['-c', sh], { cwd: ROOT, encoding: 'utf8' });
      expect(r.stderr, args).toBe('');
      // What a tool that SIGPIPE ends reports: 128 + 13.
      expect(r.status, args).toBe(141);
    }
  });

  it('a config with a bad field is named', () => {
    const bad = path.join(tmp.dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ lowers: [{ file: 7 }] }));
    const r = runTool('overlaybd', ['dump', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/CONFIG_INVALID: .*bad\.json: lowers\[0\]\.file: /);
  });

  it('inspect prints the decoded layer', () => {
    const r = runTool('overlaybd', ['inspect', vector('zfile/A.lz4bs4.tar')]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.tar).toMatchObject({ wrapped: true, pax: true, payloadOffset: 1536 });
    expect(j.zfile).toMatchObject({ algorithm: 'lz4', blockSize: 4096, headerOverwritten: true });
    expect(j.trailer.uuid).toBe('AAAAAAAA-0000-4000-8000-000000000001');
  });
});

describe('overlaybd-zfile', () => {
  it('compresses, verifies and decompresses', () => {
    const z = path.join(tmp.dir, 'a.zst.zfile'), x = path.join(tmp.dir, 'a.out');
    expect(runTool('overlaybd-zfile', ['--algorithm', 'zstd', '--bs', '16', vector('lsmt/A.commit'), z]).code).toBe(0);
    expect(runTool('overlaybd-zfile', ['--verify', z]).code).toBe(0);
    expect(runTool('overlaybd-zfile', ['-x', z, x]).code).toBe(0);
    expect(sha256(x)).toBe(sha256(vector('lsmt/A.commit')));
  });

  it('reads the source from stdin when only the output is given', () => {
    const z = path.join(tmp.dir, 'stdin.zfile'), x = path.join(tmp.dir, 'stdin.out');
    const r = spawnSync(process.execPath, [...toolArgs('overlaybd-zfile'), z], {
      cwd: ROOT,
      input: fs.readFileSync(vector('lsmt/B.commit')),
    });
    expect(r.status).toBe(0);
    expect(runTool('overlaybd-zfile', ['-x', z, x]).code).toBe(0);
    expect(sha256(x)).toBe(sha256(vector('lsmt/B.commit')));
  });
});
