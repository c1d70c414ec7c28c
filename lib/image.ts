/**
 * An overlaybd image: read-only layers plus an optional writable upper,
 * presented as one virtual block device. All I/O runs natively off the
 * event loop; writes and discards must be 512-byte aligned.
 */
import { z } from 'zod';
import { asyncDispose, native } from './native.js';
import { argument, filePath, parseWith, u64, type ImageSpec } from './config.js';

export type { ImageSpec } from './config.js';
import type { OpenConfigOptions } from './service/open-config.js';

const SpecSchema = z.object({
  lowers: z.array(filePath).max(255, 'a stack holds at most 255 read-only layers'),
  upper: z.object({ data: filePath, index: filePath.optional() }).optional(),
  ioEngine: z.enum(['psync', 'io_uring']).optional(),
});

const bytes = z.custom<ArrayBufferView>((v) => ArrayBuffer.isView(v), 'must be a Buffer, typed array or DataView');
/** A file descriptor: the native side takes a C int. */
const fdSchema = z.number().int().min(0).max(2 ** 31 - 1);


interface NativeImage {
  readonly size: number;
  readonly writable: boolean;
  read(offset: number, length: number): Promise<Buffer>;
  write(data: ArrayBufferView, offset: number): Promise<void>;
  discard(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
  dump(fd: number): Promise<void>;
  prefetch(): Promise<PrefetchStats>;
  prefetchFiles(paths: string[], concurrency: number): Promise<PrefetchStats>;
  downloadStates(): DownloadState[];
  waitDownloads(ms: number): Promise<boolean>;
  finishRecording(): Promise<void>;
  snapshot(data: string, index: string): Promise<void>;
  close(): Promise<void>;
}

/** What a prefetch read (trace replay or file list, §6.4). */
export interface PrefetchStats {
  reads: number;
  bytes: number;
  errors: number;
}

/** The state of one layer's background download (§6.3). */
export type DownloadState = 'waiting' | 'running' | 'done' | 'failed' | 'cancelled';

/**
 * Calls may run concurrently. After close() every call rejects, and every
 * getter throws, with the code CLOSED.
 */
/** @internal the native object behind an Image (for frontends that serve it natively). */
export let nativeImageOf: (img: Image) => unknown;

export class Image {
  static {
    nativeImageOf = (img) => img.#n;
  }
  #n: NativeImage;
  #closing: Promise<void> | undefined;
  #afterClose: (() => Promise<void>) | undefined;

  /** @internal use openImage; `afterClose` releases what the image owns (a private image service). */
  constructor(n: NativeImage, afterClose?: () => Promise<void>) {
    this.#n = n;
    this.#afterClose = afterClose;
  }

  /** Virtual device size in bytes (throws CLOSED after close). */
  get size(): number {
    return this.#n.size;
  }

  get writable(): boolean {
    return this.#n.writable;
  }

  /** Reads `length` bytes at `offset` (short only at the device end). */
  async read(offset: number, length: number): Promise<Buffer> {
    return this.#n.read(argument(u64, offset, 'offset'), argument(u64, length, 'length'));
  }

  /** Writes any ArrayBufferView (Buffer, Uint8Array, DataView...); copied before this returns. */
  async write(data: ArrayBufferView, offset: number): Promise<void> {
    return this.#n.write(argument(bytes, data, 'data'), argument(u64, offset, 'offset'));
  }

  /** Discards a range: it reads back as zeros (append layers) and frees space. */
  async discard(offset: number, length: number): Promise<void> {
    return this.#n.discard(argument(u64, offset, 'offset'), argument(u64, length, 'length'));
  }

  /** Makes written data and index entries durable. */
  async flush(): Promise<void> {
    return this.#n.flush();
  }

  /** Writes the whole device to a file descriptor (e.g. 1 for stdout). */
  async dump(fd: number): Promise<void> {
    return this.#n.dump(argument(fdSchema, fd, 'fd'));
  }

  /**
   * Runs the prefetch of the image's trace or file list (§6.4), or waits for
   * the one the image service started when it opened the image. An image
   * without one reads nothing.
   */
  async prefetch(): Promise<PrefetchStats> {
    return this.#n.prefetch();
  }

  /**
   * Reads the data of files found through the image's ext4 filesystem (a
   * trailing `/` or `*` means the whole tree), as the file-list prefetch does:
   * warms the cache, or (while a trace is recorded) records what they need.
   */
  async prefetchFiles(paths: string[], concurrency = 16): Promise<PrefetchStats> {
    return this.#n.prefetchFiles(argument(z.array(filePath), paths, 'paths'), argument(z.number().int().min(1).max(256), concurrency, 'concurrency'));
  }

  /** The background download of each remote layer that has a `dir` (§6.3), in layer order. */
  downloadStates(): DownloadState[] {
    return this.#n.downloadStates();
  }

  /** Waits up to `ms` for the background downloads to finish; true when they have. Holds a pool thread while it waits. */
  async waitDownloads(ms: number): Promise<boolean> {
    return this.#n.waitDownloads(argument(u64, ms, 'ms'));
  }

  /** Ends a trace recording now: the trace file and `<trace>.ok` are written (close does it too). */
  async finishRecording(): Promise<void> {
    return this.#n.finishRecording();
  }

  /**
   * Live snapshot (§6.6): seals the writable upper in place, stacks it as the
   * top read-only layer and continues on `upper`, a fresh writable layer of
   * the same virtual size. I/O keeps flowing: requests in flight finish in
   * the old upper first. Refused (image unchanged) when `upper` cannot be
   * opened for writing, has another size, or the image has no upper (EROFS).
   */
  async snapshot(upper: { data: string; index?: string }): Promise<void> {
    const u = argument(z.object({ data: filePath, index: filePath.optional() }), upper, 'upper');
    return this.#n.snapshot(u.data, u.index ?? '');
  }

  /**
   * Closes the image: calls already started finish (and resolve), a
   * writable upper is flushed, then the files are released. Calling it again
   * returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#n.close().finally(() => this.#afterClose?.());
    return this.#closing;
  }

  /** `await using img = await openImage(...)` closes it at the end of the scope. */
  [asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Opens an image: a spec of local layer files, or the path of a
 * config.v1.json (remote lowers are then read on demand through the image
 * service: see openImageConfig for its options).
 */
export async function openImage(spec: ImageSpec | string, opts?: OpenConfigOptions): Promise<Image> {
  if (typeof spec === 'string') {
    // Loaded on first use: the service module imports this one.
    const { openImageConfig } = await import('./service/open-config.js');
    return openImageConfig(spec, opts);
  }
  const s = parseWith(SpecSchema, spec, 'image spec');
  return new Image((await native().openImage(s)) as NativeImage);
}
