/**
 * Debian's nginx as a P2P proxy (§6.1 p2pConfig): `<address>/<actual url>`
 * is proxied to the actual URL, the way a P2P agent's accelerator endpoint
 * serves registry reads. Runs in the foreground (`daemon off`) with its
 * config, pid, logs and temp paths in a temp dir on 127.0.0.1; `stop()`
 * ends it and removes the dir.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startLoopbackChild } from './registry.js';

export interface P2pProxy {
  /** p2pConfig.address: `http://127.0.0.1:<port>/accelerator`. */
  address: string;
  /** Access log lines: `<method> <request uri> <status> <range header>`. */
  requests(): string[];
  stop(): Promise<void>;
}

function config(dir: string, port: number): string {
  const p = (f: string) => path.join(dir, f);
  return `daemon off;
worker_processes 1;
pid ${p('nginx.pid')};
error_log ${p('error.log')} info;
events { worker_connections 64; }
http {
  log_format p2p '$request_method $request_uri $status $http_range';
  access_log ${p('access.log')} p2p;
  client_body_temp_path ${p('body')};
  proxy_temp_path ${p('proxy')};
  fastcgi_temp_path ${p('fastcgi')};
  uwsgi_temp_path ${p('uwsgi')};
  scgi_temp_path ${p('scgi')};
  # The actual URL keeps its "//" after the scheme.
  merge_slashes off;
  server {
    listen 127.0.0.1:${port};
    location ~ ^/accelerator/(https?)://([^/]+)(/.*)$ {
      # Loopback addresses need no resolver.
      proxy_pass $1://$2$3$is_args$args;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

export async function startP2pProxy(): Promise<P2pProxy> {
  const { dir, port, stop } = await startLoopbackChild('nginx', (dir, port) => {
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, config(dir, port));
    const log = path.join(dir, 'error.log');
    // -e: the error log before the config is read (the default is under /var/log).
    return { proc: spawn('nginx', ['-c', conf, '-p', dir, '-e', log], { stdio: 'ignore' }), log };
  });
  const accessLog = path.join(dir, 'access.log');
  return {
    address: `http://127.0.0.1:${port}/accelerator`,
    requests: () => (fs.existsSync(accessLog) ? fs.readFileSync(accessLog, 'utf8').split('\n').filter(Boolean) : []),
    stop,
  };
}
