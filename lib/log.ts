/**
 * Structured logs: one JSON object a line on stderr when stderr is not a
 * terminal (for collectors), a short human line when it is. Every record has
 * a time, level, event name and flat fields.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  level?: Level;
  json?: boolean;
  stream?: { write(text: string): unknown; isTTY?: boolean };
  fields?: Record<string, unknown>;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const stream = opts.stream ?? process.stderr;
  const json = opts.json ?? !stream.isTTY;
  const min = ORDER[opts.level ?? ((process.env.OBD_LOG_LEVEL as Level | undefined) ?? 'info')] ?? 1;
  const base = opts.fields ?? {};
  const emit = (level: Level, event: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    const rec = { time: new Date().toISOString(), level, event, ...base, ...fields };
    if (json) {
      stream.write(JSON.stringify(rec, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
    } else {
      const extra = Object.entries({ ...base, ...fields })
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      stream.write(`${level === 'info' ? '' : level.toUpperCase() + ' '}${event}${extra ? ' ' + extra : ''}\n`);
    }
  };
  return {
    debug: (e, f) => emit('debug', e, f),
    info: (e, f) => emit('info', e, f),
    warn: (e, f) => emit('warn', e, f),
    error: (e, f) => emit('error', e, f),
    child: (fields) => createLogger({ ...opts, stream, json, fields: { ...base, ...fields } }),
  };
}

/** One logger writing every record to each of `loggers` (say stderr and a log file). */
export function teeLogger(...loggers: Logger[]): Logger {
  return {
    debug: (e, f) => loggers.forEach((l) => l.debug(e, f)),
    info: (e, f) => loggers.forEach((l) => l.info(e, f)),
    warn: (e, f) => loggers.forEach((l) => l.warn(e, f)),
    error: (e, f) => loggers.forEach((l) => l.error(e, f)),
    child: (fields) => teeLogger(...loggers.map((l) => l.child(fields))),
  };
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
