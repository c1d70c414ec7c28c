/**
 * The structured logging hook of the registry client. Every call gets an
 * event name (`http.request`, `auth.token`, `retry`, ...) and flat fields.
 */
export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info?(event: string, fields?: Record<string, unknown>): void;
  warn?(event: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { debug() {} };

/** Strips credentials from header maps before they reach a log line. */
export function redactHeaders(h: Record<string, string | string[] | number | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) {
    out[k] = /^(authorization|proxy-authorization|cookie)$/i.test(k) ? '<redacted>' : v;
  }
  return out;
}
