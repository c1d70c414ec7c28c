/**
 * Per-layer progress (download, convert, upload): bars redrawn in place on
 * a terminal, structured log lines (stage start and end, with bytes and
 * time) everywhere else.
 */
import { MultiBar } from 'cli-progress';
import type { Logger } from '../log.js';

export type Stage = 'download' | 'convert' | 'upload';
export type StageState = 'running' | 'done' | 'skipped' | 'failed';

export interface ProgressEvent {
  /** Stable key of the layer, e.g. `linux/amd64 #3`. */
  layer: string;
  stage: Stage;
  state: StageState;
  /** Bytes done and expected (total may be unknown). */
  done?: number;
  total?: number;
  /** A short word: `reused`, `mounted`, `exists`, an error code... */
  note?: string;
}

export interface ProgressSink {
  update(e: ProgressEvent): void;
  /** Draws the final state and releases the terminal. */
  close(): void;
}

export const silentProgress: ProgressSink = { update() {}, close() {} };

/** Log lines: one when a stage starts and one when it ends; nothing for intermediate bytes. */
export function logProgress(logger: Logger): ProgressSink {
  const started = new Map<string, number>();
  return {
    update(e) {
      const key = `${e.layer}\0${e.stage}`;
      if (e.state === 'running') {
        if (started.has(key)) return;
        started.set(key, Date.now());
        logger.info(`layer.${e.stage}.start`, { layer: e.layer, ...(e.total !== undefined ? { bytes: e.total } : {}) });
        return;
      }
      const t0 = started.get(key);
      started.delete(key);
      const fields = {
        layer: e.layer,
        ...(e.done !== undefined ? { bytes: e.done } : {}),
        ...(t0 !== undefined ? { ms: Date.now() - t0 } : {}),
        ...(e.note ? { note: e.note } : {}),
      };
      if (e.state === 'failed') logger.warn(`layer.${e.stage}.failed`, fields);
      else logger.info(`layer.${e.stage}.${e.state}`, fields);
    },
    close() {},
  };
}

function size(n: number): string {
  if (n >= 2 ** 30) return (n / 2 ** 30).toFixed(1) + 'G';
  if (n >= 2 ** 20) return (n / 2 ** 20).toFixed(1) + 'M';
  if (n >= 2 ** 10) return (n / 2 ** 10).toFixed(0) + 'K';
  return String(n);
}

function bar(done: number | undefined, total: number | undefined, width: number): string {
  if (done === undefined || !total) return ' '.repeat(width);
  const filled = Math.max(0, Math.min(width, Math.round((done / total) * width)));
  return '#'.repeat(filled) + '-'.repeat(width - filled);
}

interface Row {
  layer: string;
  stages: Partial<Record<Stage, ProgressEvent>>;
}

/**
 * Bars on a terminal: one row per layer, three columns, redrawn in place
 * by cli-progress at most ten times a second.
 */
export function ttyProgress(stream: NodeJS.WriteStream = process.stderr): ProgressSink {
  const rows: Row[] = [];
  const byLayer = new Map<string, Row>();
  const cell = (e: ProgressEvent | undefined): string => {
    if (!e) return ''.padEnd(26);
    if (e.state === 'running') return `[${bar(e.done, e.total, 12)}] ${size(e.done ?? 0)}`.padEnd(26);
    const word = e.state === 'done' ? (e.note ?? 'done') : e.state === 'skipped' ? (e.note ?? 'skipped') : `FAILED ${e.note ?? ''}`;
    return `${word} ${e.done !== undefined ? size(e.done) : ''}`.padEnd(26);
  };
  const format = (_o: unknown, _p: unknown, payload: { row: Row }): string => {
    const r = payload.row;
    const width = Math.max(10, ...rows.map((x) => x.layer.length));
    const line = `${r.layer.padEnd(width)}  ${cell(r.stages.download)}${cell(r.stages.convert)}${cell(r.stages.upload)}`;
    return line.slice(0, (stream.columns ?? 120) - 1);
  };
  const bars = new MultiBar({ stream, format, fps: 10, hideCursor: false, gracefulExit: false, linewrap: false, forceRedraw: true });
  return {
    update(e) {
      let r = byLayer.get(e.layer);
      if (!r) {
        r = { layer: e.layer, stages: {} };
        rows.push(r);
        byLayer.set(e.layer, r);
        bars.create(1, 0, { row: r });
      }
      r.stages[e.stage] = e;
    },
    close() {
      bars.stop();
    },
  };
}
