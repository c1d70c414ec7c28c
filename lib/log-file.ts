/**
 * A log file as overlaybd.json's logConfig describes it (§5.2): appended
 * to, and rotated once it passes `sizeBytes`: the file becomes `<path>.1`,
 * `.1` becomes `.2`, and so on up to `rotateNum` old files. Writes are
 * synchronous, so the last record before a crash is on disk.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface LogFileOptions {
  sizeBytes: number;
  rotateNum: number;
}

export class LogFile {
  #fd: number;
  #size: number;

  private constructor(
    readonly file: string,
    private readonly opts: LogFileOptions,
  ) {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    this.#fd = fs.openSync(this.file, 'a', 0o644);
    this.#size = fs.fstatSync(this.#fd).size;
  }

  /** Opens (creating) the file and its directory; throws the fs error naming the path. */
  static open(file: string, opts: LogFileOptions): LogFile {
    return new LogFile(path.resolve(file), opts);
  }

  write(text: string): boolean {
    const b = Buffer.from(text);
    if (this.#size > 0 && this.#size + b.length > this.opts.sizeBytes) this.#rotate();
    fs.writeSync(this.#fd, b);
    this.#size += b.length;
    return true;
  }

  close(): void {
    fs.closeSync(this.#fd);
  }

  #rotate(): void {
    fs.closeSync(this.#fd);
    const name = (n: number) => (n === 0 ? this.file : `${this.file}.${n}`);
    if (this.opts.rotateNum === 0) fs.rmSync(this.file, { force: true });
    for (let n = this.opts.rotateNum - 1; n >= 0; n--) {
      if (fs.existsSync(name(n))) fs.renameSync(name(n), name(n + 1));
    }
    this.#fd = fs.openSync(this.file, 'a', 0o644);
    this.#size = 0;
  }
}
