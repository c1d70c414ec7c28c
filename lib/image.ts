/**
 * An overlaybd image: read-only layers plus an optional writable upper,
 * presented as one virtual block device. All I/O runs natively off the
 * event loop; writes and discards must be 512-byte aligned.
 */
import { z } from 'zod';
import { native } from './native.js';
import { argument, parseWith, u64, type ImageSpec } from './config.js';

export type { ImageSpec } from './config.js';

const SpecSchema = z.object({
  lowers: z.array(z.string().min(1)).max(255, 'a stack holds at most 255 read-only layers'),
  upper: z.object({ data: z.string().min(1), index: z.string().optional() }).optional(),
  ioEngine: z.enum(['psync', 'io_uring']).optional(),
});


interface NativeImage {
  readonly size: number;
  readonly writable: boolean;
  read(offset: number, length: number): Promise<Buffer>;
  write(data: Buffer, offset: number): Promise<void>;
  discard(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
  dump(fd: number): Promise<void>;
  close(): void;
}

export class Image {
  #n: NativeImage;

  /** @internal use openImage */
  constructor(n: NativeImage) {
    this.#n = n;
  }

  /** Virtual device size in bytes. */
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

  async write(data: Buffer, offset: number): Promise<void> {
    return this.#n.write(data, argument(u64, offset, 'offset'));
  }

  /** Discards a range: it reads back as zeros (append layers) and frees space. */
  async discard(offset: number, length: number): Promise<void> {
    return this.#n.discard(argument(u64, offset, 'offset'), argument(u64, length, 'length'));
  }

  /** Makes written data and index entries durable. */
  flush(): Promise<void> {
    return this.#n.flush();
  }

  /** Writes the whole device to a file descriptor (e.g. 1 for stdout). */
  dump(fd: number): Promise<void> {
    return this.#n.dump(fd);
  }

  close(): void {
    this.#n.close();
  }
}

export async function openImage(spec: ImageSpec): Promise<Image> {
  const s = parseWith(SpecSchema, spec, 'image spec');
  return new Image((await native().openImage(s)) as NativeImage);
}
