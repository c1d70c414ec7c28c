/** One ustar header block, for the small tars this package writes itself (the trace layer) and its tests build. */

export const TAR_BLOCK = 512;

export interface UstarEntry {
  /** At most 100 bytes: there is no prefix or pax record here. */
  name: string;
  size?: number;
  mode: number;
  /** '0' regular file, '2' symlink, '5' directory, ... */
  typeflag: string;
  linkname?: string;
  /** Seconds since the epoch. */
  mtime?: number;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** The header block of `e` (uid and gid 0), its checksum filled in. */
export function ustarHeader(e: UstarEntry): Buffer {
  if (Buffer.byteLength(e.name) > 100) throw new Error(`tar name longer than 100 bytes: ${e.name}`);
  if (e.linkname && Buffer.byteLength(e.linkname) > 100) throw new Error(`tar link target longer than 100 bytes: ${e.linkname}`);
  const h = Buffer.alloc(TAR_BLOCK);
  h.write(e.name, 0, 100, 'utf8');
  h.write(octal(e.mode, 8), 100, 8, 'ascii');
  h.write(octal(0, 8), 108, 8, 'ascii');
  h.write(octal(0, 8), 116, 8, 'ascii');
  h.write(octal(e.size ?? 0, 12), 124, 12, 'ascii');
  h.write(octal(e.mtime ?? 0, 12), 136, 12, 'ascii');
  h.write('        ', 148, 8, 'ascii');
  h.write(e.typeflag, 156, 1, 'ascii');
  h.write(e.linkname ?? '', 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 8, 'ascii');
  return h;
}
