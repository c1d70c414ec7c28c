import { createLogger, silentLogger } from '../log.js';
import { OverlaybdError } from '../errors.js';
import { RegistryClient } from '../registry/index.js';
import { convert, logProgress, openDedupStore, ttyProgress, type ConvertOptionsInput } from '../convertor/index.js';
import { intFlag, parse, usageError, type Command } from './run.js';

const BOOLEANS = ['plain', 'verbose', 'oci', 'mkfs', 'disable-sparse', 'referrer', 'insecure', 'reserve', 'no-upload', 'dump-manifest', 'stage-layers'] as const;

/**
 * Cobra accepts `--flag=false` for booleans; node's parseArgs does not.
 * Pulls those out (`--mkfs=false` is how upstream turns mkfs off).
 */
function splitBooleans(argv: string[]): { argv: string[]; explicit: Map<string, boolean> } {
  const explicit = new Map<string, boolean>();
  const rest: string[] = [];
  for (const a of argv) {
    const m = /^--([a-z-]+)=(true|false|1|0)$/i.exec(a);
    if (m && (BOOLEANS as readonly string[]).includes(m[1]!)) {
      explicit.set(m[1]!, /^(true|1)$/i.test(m[2]!));
      continue;
    }
    rest.push(a);
  }
  return { argv: rest, explicit };
}

export const convertorCommand: Command = {
  name: 'convertor',
  summary: 'convert an OCI or Docker image in a registry into an overlaybd image',
  usage: `usage: convertor -r REPOSITORY (-i TAG | -g DIGEST) (--overlaybd TAG | -o TAG) [options]
  -r, --repository R       source and destination repository, e.g. registry.example.com/library/redis
  -u, --username U[:P]     registry credentials (default: Docker's config.json)
  -i, --input-tag T        source tag
  -g, --input-digest D     source digest (sha256:...)
  -o, --output-tag T       output tag (same as --overlaybd)
      --overlaybd T        build native overlaybd into REPOSITORY:T
      --turboOCI T, --fastoci T   TurboOCI output (not supported yet: ENOTSUP)
      --oci                OCI media types (default: Docker schema2)
      --mkfs               make the filesystem in the bottom layer (default true)
      --vsize GB           virtual device size of the bottom layer (default 64)
      --disable-sparse     non-sparse writable layers while converting
      --fstype T           ext4 only (upstream's TurboOCI option)
      --db-type T          dedup store: sqlite (default), mysql or none
      --db-str S           sqlite file (default ~/.cache/overlaybd/convertor.db) or MySQL DSN
                           user:pass@tcp(host:port)/db
      --concurrency-limit N  manifests converted at once (default 4, 0 = unlimited)
      --referrer           add subject and artifactType (forces --oci)
  -d, --dir D              work dir (default tmp_conv)
      --reserve            keep the work dir and intermediate files
      --stage-layers       save each source layer as layer.tar before applying it
                           (default: stream it from the registry into the apply)
      --no-upload          convert without pushing layers, config or manifest
      --dump-manifest      write config.json, manifest.json (and index.json) to the work dir
      --plain              plain HTTP
      --insecure           skip TLS certificate verification
      --cert-dir D         certs.d-style dir: *.crt CAs, *.cert + *.key client pairs (repeatable)
      --root-ca F          extra CA file (repeatable)
      --client-cert C:K    client certificate and key (repeatable)
      --verbose            debug logs
Booleans also take --flag=true / --flag=false.`,
  async main(rawArgv) {
    const { argv, explicit } = splitBooleans(rawArgv);
    const { values: v, positionals } = parse(argv, {
      repository: { type: 'string', short: 'r' },
      username: { type: 'string', short: 'u' },
      'input-tag': { type: 'string', short: 'i' },
      'input-digest': { type: 'string', short: 'g' },
      'output-tag': { type: 'string', short: 'o' },
      overlaybd: { type: 'string' },
      turboOCI: { type: 'string' },
      fastoci: { type: 'string' },
      dir: { type: 'string', short: 'd' },
      fstype: { type: 'string' },
      vsize: { type: 'string' },
      'db-type': { type: 'string' },
      'db-str': { type: 'string' },
      'concurrency-limit': { type: 'string' },
      'cert-dir': { type: 'string', multiple: true },
      'root-ca': { type: 'string', multiple: true },
      'client-cert': { type: 'string', multiple: true },
      plain: { type: 'boolean' },
      verbose: { type: 'boolean' },
      oci: { type: 'boolean' },
      mkfs: { type: 'boolean' },
      'disable-sparse': { type: 'boolean' },
      referrer: { type: 'boolean' },
      insecure: { type: 'boolean' },
      reserve: { type: 'boolean' },
      'no-upload': { type: 'boolean' },
      'dump-manifest': { type: 'boolean' },
      'stage-layers': { type: 'boolean' },
    });
    const flag = (name: (typeof BOOLEANS)[number], dflt: boolean): boolean =>
      explicit.get(name) ?? (v[name as keyof typeof v] as boolean | undefined) ?? dflt;
    if (positionals.length > 0) throw usageError(`unexpected argument '${positionals[0]}'`);
    if (!v.repository) throw usageError('-r/--repository is required');
    if (!v['input-tag'] === !v['input-digest']) throw usageError('give one of -i/--input-tag and -g/--input-digest');
    if (v.turboOCI || v.fastoci) {
      throw new OverlaybdError('ENOTSUP', 'TurboOCI (--turboOCI/--fastoci) conversion is not implemented yet; use --overlaybd');
    }
    const tag = v.overlaybd ?? v['output-tag'];
    if (!tag) throw usageError('an output tag is required: --overlaybd TAG (or -o TAG)');
    if (v.fstype !== undefined && v.fstype !== 'ext4') throw usageError(`--fstype ${v.fstype}: the native engine makes ext4 only`);
    const vsize = intFlag('--vsize', v.vsize, 64);
    if (vsize <= 0) throw usageError('--vsize must be a positive number of GiB');
    const dbType = v['db-type'] ?? 'sqlite';
    if (dbType !== 'sqlite' && dbType !== 'mysql' && dbType !== 'none') throw usageError(`--db-type must be sqlite, mysql or none, got '${dbType}'`);
    const clientCerts = (v['client-cert'] ?? []).map((s) => {
      const i = s.lastIndexOf(':');
      if (i <= 0 || i === s.length - 1) throw usageError(`--client-cert wants CERT:KEY, got '${s}'`);
      return { cert: s.slice(0, i), key: s.slice(i + 1) };
    });

    const verbose = flag('verbose', false);
    const tty = Boolean(process.stderr.isTTY);
    // On a terminal the bars carry progress; info lines would tear them.
    const logger = createLogger({ level: verbose ? 'debug' : tty ? 'warn' : 'info' });
    const progress = tty ? ttyProgress(process.stderr) : logProgress(logger);
    const client = new RegistryClient({
      transport: {
        plainHttp: flag('plain', false),
        insecure: flag('insecure', false),
        caFiles: v['root-ca'] ?? [],
        certDirs: v['cert-dir'] ?? [],
        clientCerts,
      },
      credentials: v.username !== undefined ? { userPass: v.username } : {},
      logger: verbose ? logger : silentLogger,
    });
    const store = await openDedupStore({ dbType, ...(v['db-str'] !== undefined ? { dbStr: v['db-str'] } : {}) });
    const abort = new AbortController();
    const onSignal = () => abort.abort(new OverlaybdError('CONVERT_FAILED', 'interrupted'));
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const options: ConvertOptionsInput = {
      repository: v.repository,
      ...(v['input-tag'] ? { inputTag: v['input-tag'] } : { inputDigest: v['input-digest']! }),
      overlaybdTag: tag,
      oci: flag('oci', false),
      mkfs: flag('mkfs', true),
      vsizeGB: vsize,
      disableSparse: flag('disable-sparse', false),
      concurrency: intFlag('--concurrency-limit', v['concurrency-limit'], 4),
      workDir: v.dir ?? 'tmp_conv',
      reserve: flag('reserve', false),
      stageLayers: flag('stage-layers', false),
      noUpload: flag('no-upload', false),
      dumpManifest: flag('dump-manifest', false),
      referrer: flag('referrer', false),
    };
    try {
      const r = await convert(options, { client, store, logger, progress, signal: abort.signal });
      process.stdout.write(`${r.reference}@${r.output.digest}\n`);
    } finally {
      progress.close();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await client.close();
      await store.close();
    }
  },
};
