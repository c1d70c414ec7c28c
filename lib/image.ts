/**
 * An overlaybd image: read-only layers plus an optional writable upper,
 * presented as one virtual block device. All I/O runs natively off the
 * event loop; writes and discards must be 512-byte aligned.
 */
import { z } from 'zod';
import { asyncDispose, native } from './native.js';
import { argument, filePath, parseWith, u64, type ImageSpec } from './config.js';

export type { ImageSpec } from './config.js';

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
  close(): Promise<void>;
}

/**
 * Calls may run concurrently. After close() every call rejects, and every
 * getter throws, with the code CLOSED.
 */
export class Image {
  #n: NativeImage;
  #closing: Promise<void> | undefined;

  /** @internal use openImage */
  constructor(n: NativeImage) {
    this.#n = n;
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
   * Closes the image: calls already started finish (and resolve), a
   * writable upper is flushed, then the files are released. Calling it again
   * returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#n.close();
    return this.#closing;
  }

  /** `await using img = await openImage(...)` closes it at the end of the scope. */
  [asyncDispose](): Promise<void> {
    return this.close();
  }
}

export async function openImage(spec: ImageSpec): Promise<Image> {
  const s = parseWith(SpecSchema, spec, 'image spec');
  return new Image((await native().openImage(s)) as NativeImage);
}
