/**
 * Log helpers of the registry client. It logs through lib/log.ts's Logger:
 * every call gets an event name (`http.request`, `auth.token`, `retry`, ...)
 * and flat fields.
 */

/** Strips credentials from header maps before they reach a log line. */
export function redactHeaders(h: Record<string, string | string[] | number | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) {
    out[k] = /^(authorization|proxy-authorization|cookie|set-cookie)$/i.test(k) ? '<redacted>' : v;
  }
  return out;
}
