/**
 * Docker credential helpers (`docker-credential-<name>`): the protocol is
 * `docker-credential-<name> get` with the server URL on stdin, answering
 * JSON `{ServerURL, Username, Secret}` on stdout. A `<token>` user name
 * means Secret is an identity (refresh) token. A helper that has nothing
 * for the server exits non-zero saying "credentials not found": that is
 * anonymous access, as for docker, not an error.
 */
import { spawn } from 'node:child_process';
import { z } from 'zod';
import { OverlaybdError } from '../errors.js';
import type { Credentials } from './credentials.js';

/** The helper's own wording (docker-credential-helpers' errCredentialsNotFoundMessage); part of the protocol. */
const NOT_FOUND = 'credentials not found in native keychain';
const IDENTITY_TOKEN_USER = '<token>';

const HelperAnswer = z.object({
  ServerURL: z.string().optional(),
  Username: z.string(),
  Secret: z.string(),
});

export interface HelperOptions {
  /** Kills a helper that has not answered by then (default 30 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs `docker-credential-<helper> get` for `serverUrl`; undefined when the helper has no credentials for it. */
export function runCredentialHelper(helper: string, serverUrl: string, opts: HelperOptions = {}): Promise<Credentials | undefined> {
  const program = `docker-credential-${helper}`;
  const what = `credential helper ${program} for ${serverUrl}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      timeout: opts.timeoutMs ?? 30_000,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    // A helper that exits without reading stdin makes the write fail with EPIPE: the exit status tells the story.
    child.stdin.on('error', () => {});
    child.on('error', (e: NodeJS.ErrnoException) => {
      const why = e.code === 'ENOENT' ? 'is not on PATH' : `cannot run: ${e.message}`;
      reject(new OverlaybdError('CONFIG_INVALID', `${what}: ${program} ${why}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8').trim();
      if (code !== 0) {
        if (stdout.includes(NOT_FOUND)) {
          resolve(undefined);
          return;
        }
        const detail = (stdout || Buffer.concat(err).toString('utf8').trim()).slice(0, 300);
        const how = signal ? `was killed by ${signal}` : `exited with ${code}`;
        reject(new OverlaybdError('REGISTRY_UNAUTHORIZED', `${what}: ${how}${detail ? `: ${detail}` : ''}`));
        return;
      }
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        reject(new OverlaybdError('REGISTRY_UNAUTHORIZED', `${what}: the answer is not JSON`));
        return;
      }
      const parsed = HelperAnswer.safeParse(json);
      if (!parsed.success) {
        reject(new OverlaybdError('REGISTRY_UNAUTHORIZED', `${what}: the answer lacks Username or Secret`));
        return;
      }
      const { Username: username, Secret: secret } = parsed.data;
      if (username === IDENTITY_TOKEN_USER) resolve({ username: '', password: '', identityToken: secret });
      else resolve({ username, password: secret });
    });
    child.stdin.end(serverUrl);
  });
}
