/**
 * Runs cpp/tools/remote_get (one registry blob read through obd::remote) and
 * parses its JSON lines. Asynchronous, so in-process servers (token server,
 * fault proxy, credential servers) can answer it meanwhile. TestBlob pushes
 * a blob and checks what remote_get read of it.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { expect } from 'vitest';
import { RegistryClient } from '../../lib/registry/index.js';
import { nativeTool } from './native-tools.js';
import type { TestRegistry } from './registry.js';

/** The range most remote tests read, as remote_get takes it, as messages name it, and as the Range header. */
export const R: [number, number] = [4096, 65536];
export const R_TEXT = '4096-69631';
export const R_HEADER = /^bytes=4096-69631$/;

export interface OpenLine {
  op: 'open';
  ok: boolean;
  size?: number;
  p2p?: boolean;
  code?: string;
  message?: string;
  ms?: number;
}
export interface ReadLine {
  op: 'read';
  off: number;
  len: number;
  ok: boolean;
  bytes?: number;
  sha256?: string;
  code?: string;
  message?: string;
  ms: number;
}
export interface FetchLine {
  op: 'fetch';
  offset: number;
  length: number;
  bytes: number;
  status: number;
  attempt: number;
  ok: boolean;
  p2p: boolean;
}
export interface RemoteGetResult {
  open: OpenLine;
  reads: ReadLine[];
  fetches: FetchLine[];
  /** Wall time of the whole run. */
  ms: number;
  stderr: string;
}

/** `ranges` as [offset, length]; `args` are remote_get options (always with --events). */
export async function remoteGet(args: string[], ranges: [number, number][] = [], timeoutMs = 20_000): Promise<RemoteGetResult> {
  const exe = await nativeTool('remote_get');
  const all = ['--events', ...args, ...ranges.map(([o, l]) => `${o}:${l}`)];
  const t0 = Date.now();
  const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    execFile(exe, all, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`remote_get ${all.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
  const ms = Date.now() - t0;
  // Failures are JSON lines; anything on stderr is a sanitizer report or a crash.
  if (stderr.trim() !== '') throw new Error(`remote_get ${all.join(' ')} wrote to stderr:\n${stderr}`);
  const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as OpenLine | ReadLine | FetchLine);
  const open = lines.find((l): l is OpenLine => l.op === 'open');
  if (!open) throw new Error(`remote_get printed no open line:\n${stdout}\n${stderr}`);
  return {
    open,
    reads: lines.filter((l): l is ReadLine => l.op === 'read'),
    fetches: lines.filter((l): l is FetchLine => l.op === 'fetch'),
    ms,
    stderr,
  };
}

export function sha256Hex(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/** The sha256 remote_get should print for [off, off+len) of `blob` (clipped to its end). */
export function rangeHash(blob: Buffer, off: number, len: number): string {
  return sha256Hex(blob.subarray(Math.min(off, blob.length), Math.min(off + len, blob.length)));
}

/**
 * One random blob in repository lazy/app, pushed with the registry client,
 * and the checks the remote tests make on remote_get's output.
 */
export class TestBlob {
  readonly repo = 'lazy/app';
  readonly data: Buffer;
  readonly digest: string;
  readonly size: number;
  /** Request paths of this repository's blobs. */
  readonly pathRe = /\/v2\/lazy\/app\/blobs\/sha256:/;

  constructor(size = 1 << 20) {
    this.size = size;
    this.data = crypto.randomBytes(size);
    this.digest = `sha256:${sha256Hex(this.data)}`;
  }

  async push(reg: TestRegistry, userPass?: string): Promise<void> {
    const c = new RegistryClient({
      // certs.d holds the client certificate when the registry asks for one.
      transport: reg.url.startsWith('https') ? { caFiles: [reg.caFile!], certDirs: [path.dirname(reg.certDir!)] } : { plainHttp: true },
      credentials: { dockerConfig: false, ...(userPass ? { userPass } : {}) },
    });
    await c.pushBlob({ registry: reg.host, repository: this.repo }, { digest: this.digest, size: this.size }, this.data);
  }

  /** config.v1.json's repoBlobUrl for a registry at `base` (http://host:port). */
  repoBlobUrl(base: string): string {
    return `${base}/v2/${this.repo}/blobs`;
  }

  /** remote_get arguments for this blob at `base`, with a time limit that fails a hang fast. */
  args(base: string, extra: string[] = []): string[] {
    return ['--url', this.repoBlobUrl(base), '--digest', this.digest, '--size', String(this.size), '--timeout-ms', '5000', ...extra];
  }

  /** The same without the size: open then asks the registry (bytes 0-0), so auth happens at open. */
  probeArgs(base: string, extra: string[] = []): string[] {
    return ['--url', this.repoBlobUrl(base), '--digest', this.digest, '--timeout-ms', '5000', ...extra];
  }

  /** The open succeeded and each range read the blob's bytes (clipped at its end). */
  expectBytes(r: RemoteGetResult, ranges: [number, number][]): void {
    expect(r.open.ok, r.open.message).toBe(true);
    expect(r.reads).toHaveLength(ranges.length);
    ranges.forEach(([off, len], i) => {
      const line = r.reads[i]!;
      expect(line.ok, line.message).toBe(true);
      expect(line.bytes).toBe(Math.max(0, Math.min(len, this.size - off)));
      expect(line.sha256).toBe(rangeHash(this.data, off, len));
    });
  }

  /** The first failed read has `code` and a message naming the digest, `range` ("a-b") and `fragments`. */
  expectError(r: RemoteGetResult, code: string, range: string, ...fragments: RegExp[]): void {
    const line = r.reads.find((l) => !l.ok) ?? r.reads[0]!;
    expect(line.ok).toBe(false);
    expect(line.code, line.message).toBe(code);
    expect(line.message).toContain(this.digest);
    expect(line.message).toContain(`bytes ${range}`);
    for (const f of fragments) expect(line.message).toMatch(f);
  }
}
