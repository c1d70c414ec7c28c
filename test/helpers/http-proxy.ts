/**
 * A forward HTTP proxy (Debian's tinyproxy) for the proxy tests. It runs in
 * a mount namespace of its own whose /etc/hosts also maps PROXIED_HOST to
 * 127.0.0.1: only the proxy can resolve that name, so a request for it
 * that arrives proves it went through the proxy. (A client never proxies
 * loopback addresses or localhost, as Go's does.)
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PROXIED_HOST, startLoopbackChild } from './registry.js';

export { PROXIED_HOST };

export interface HttpProxy {
  /** `http://[user:password@]127.0.0.1:<port>` */
  url: string;
  /** The proxy's URL without credentials. */
  bare: string;
  /** Request lines the proxy logged (`GET http://...`, `CONNECT host:port`), oldest first. */
  requests(): string[];
  stop(): Promise<void>;
}

/** Starts tinyproxy on loopback; with `auth`, it asks for those Basic credentials. */
export async function startHttpProxy(auth?: { user: string; password: string }): Promise<HttpProxy> {
  let log = '';
  const { port, stop } = await startLoopbackChild('tinyproxy', (dir, port) => {
    log = path.join(dir, 'tinyproxy.log');
    const hosts = path.join(dir, 'hosts');
    fs.writeFileSync(hosts, `${fs.readFileSync('/etc/hosts', 'utf8')}\n127.0.0.1 ${PROXIED_HOST}\n`);
    const conf = path.join(dir, 'tinyproxy.conf');
    const lines = [
      `Port ${port}`,
      'Listen 127.0.0.1',
      'Allow 127.0.0.1',
      'Timeout 60',
      'MaxClients 64',
      `LogFile "${log}"`,
      'LogLevel Connect',
      'DisableViaHeader Yes',
      // No ConnectPort: CONNECT to any port (the registries' are random).
      ...(auth ? [`BasicAuth ${auth.user} ${auth.password}`] : []),
    ];
    fs.writeFileSync(conf, lines.join('\n') + '\n');
    // The mount is private to the new namespace and goes with the process.
    const script = `mount --bind "${hosts}" /etc/hosts && exec tinyproxy -d -c "${conf}"`;
    return { proc: spawn('unshare', ['--mount', 'sh', '-c', script], { stdio: 'ignore' }), log };
  });
  const bare = `http://127.0.0.1:${port}`;
  const creds = auth ? `${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.password)}@` : '';
  return {
    url: `http://${creds}127.0.0.1:${port}`,
    bare,
    requests: () =>
      fs.existsSync(log) ? [...fs.readFileSync(log, 'utf8').matchAll(/Request \(file descriptor \d+\): (\S+ \S+)/g)].map((m) => m[1]!) : [],
    stop,
  };
}
