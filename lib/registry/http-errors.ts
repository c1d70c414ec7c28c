/**
 * Turns registry HTTP failures into OverlaybdErrors whose message names the
 * registry URL, the operation and what the registry said.
 */
import { OverlaybdError, type ErrorCode } from '../errors.js';

export interface RegistryErrorBody {
  code?: string;
  message?: string;
  detail?: unknown;
}

/**
 * A registry's HTTP failure: an OverlaybdError that also keeps the status,
 * the URL and the distribution spec's error codes from the body
 * (BLOB_UPLOAD_UNKNOWN, DIGEST_INVALID, ...), so callers decide by those,
 * never by the message text.
 */
export class RegistryHttpError extends OverlaybdError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly status: number,
    readonly url: URL,
    readonly registryCodes: readonly string[],
  ) {
    super(code, message);
  }

  /** True when the registry's body named any of `codes`. */
  said(...codes: string[]): boolean {
    return this.registryCodes.some((c) => codes.includes(c));
  }
}

function parseErrorBody(text: string): { errors?: RegistryErrorBody[]; details?: string; message?: string } | undefined {
  try {
    const json = JSON.parse(text) as unknown;
    return json && typeof json === 'object' ? (json as { errors?: RegistryErrorBody[] }) : undefined;
  } catch {
    return undefined; // not JSON
  }
}

/** The spec's error codes named in a body (empty when it has none). */
export function errorBodyCodes(body: Buffer | undefined): string[] {
  if (!body || body.length === 0) return [];
  const json = parseErrorBody(body.toString('utf8'));
  if (!json || !Array.isArray(json.errors)) return [];
  return json.errors.map((e) => e?.code).filter((c): c is string => typeof c === 'string');
}

/** Parses the distribution spec's `{"errors":[{code,message,detail}]}` body into one line. */
export function describeErrorBody(body: Buffer | undefined): string {
  if (!body || body.length === 0) return '';
  const text = body.toString('utf8');
  const json = parseErrorBody(text);
  if (json) {
    if (Array.isArray(json.errors) && json.errors.length > 0) {
      return json.errors
        .map((e) => {
          const detail = e.detail === undefined || e.detail === null ? '' : ` (${typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail)})`;
          return `${e.code ?? 'UNKNOWN'}: ${e.message ?? ''}${detail}`.slice(0, 400);
        })
        .join('; ');
    }
    if (typeof json.details === 'string') return json.details.slice(0, 400);
    if (typeof json.message === 'string') return json.message.slice(0, 400);
  }
  return text.replace(/\s+/g, ' ').trim().slice(0, 200);
}

export function codeForStatus(status: number): ErrorCode {
  if (status === 401 || status === 407) return 'REGISTRY_UNAUTHORIZED'; // 407: the proxy's
  if (status === 403) return 'REGISTRY_DENIED';
  if (status === 404) return 'REGISTRY_NOT_FOUND';
  if (status === 429) return 'REGISTRY_RATE_LIMITED';
  return 'REGISTRY_ERROR';
}

/** What a 407 means to the user, from a registry request or a CONNECT. */
export const PROXY_AUTH_REQUIRED = 'proxy authentication required (give user:password in the proxy URL)';

const STATUS_TEXT: Record<number, string> = {
  401: 'unauthorized',
  403: 'denied',
  404: 'not found',
  405: 'method not allowed',
  407: PROXY_AUTH_REQUIRED,
  416: 'range not satisfiable',
  429: 'too many requests',
};

export function statusError(
  status: number,
  op: { what: string; method: string; url: URL },
  body?: Buffer,
  extra?: { attempts?: number; code?: ErrorCode },
): RegistryHttpError {
  const said = status === 407 ? '' : describeErrorBody(body); // a 407's body is the proxy's page
  const text = STATUS_TEXT[status] ?? (status >= 500 ? 'server error' : 'unexpected status');
  const attempts = extra?.attempts && extra.attempts > 1 ? ` after ${extra.attempts} attempts` : '';
  return new RegistryHttpError(
    extra?.code ?? codeForStatus(status),
    `${op.what}: ${op.method} ${op.url.href}: HTTP ${status} ${text}${attempts}${said ? `: ${said}` : ''}`,
    status,
    op.url,
    errorBodyCodes(body),
  );
}
