/**
 * The snapshotter process: open the store, serve gRPC on `address`, the
 * metrics exporter when enabled; stop gracefully on request.
 */
import { createLogger, type Level, type Logger } from '../log.js';
import type { SnapshotterConfig } from './config.js';
import { createSnapshotterMetrics, startMetricsExporter, type MetricsExporter } from './metrics.js';
import { serveSnapshots, type SnapshotsServer } from './server.js';
import { Snapshotter } from './snapshotter.js';

/** logrus levels onto ours. */
function levelOf(verbose: string): Level {
  if (verbose === 'trace' || verbose === 'debug') return 'debug';
  if (verbose === 'warn' || verbose === 'warning') return 'warn';
  if (verbose === 'error' || verbose === 'fatal' || verbose === 'panic') return 'error';
  return 'info';
}

export interface RunningSnapshotter {
  snapshotter: Snapshotter;
  server: SnapshotsServer;
  metricsUrl?: string;
  stop(): Promise<void>;
}

export async function runSnapshotter(config: SnapshotterConfig, logger?: Logger): Promise<RunningSnapshotter> {
  const log = logger ?? createLogger({ level: levelOf(config.verbose), fields: { component: 'snapshotter' } });
  const snapshotter = await Snapshotter.open(config, { logger: log });
  const metrics = createSnapshotterMetrics();
  let exporter: MetricsExporter | undefined;
  let server: SnapshotsServer;
  try {
    if (config.exporterConfig.enable) {
      exporter = await startMetricsExporter(metrics.registry, { port: config.exporterConfig.port, uriPrefix: config.exporterConfig.uriPrefix });
      log.info('snapshotter.metrics', { url: exporter.url });
    }
    server = await serveSnapshots(snapshotter, config.address, { logger: log, metrics });
  } catch (e) {
    await exporter?.close();
    snapshotter.close();
    throw e;
  }
  metrics.alive.set(1);
  let stopping: Promise<void> | undefined;
  return {
    snapshotter,
    server,
    metricsUrl: exporter?.url,
    stop: () =>
      (stopping ??= (async () => {
        metrics.alive.set(0);
        await server.stop();
        await exporter?.close();
        snapshotter.close();
        log.info('snapshotter.stopped', {});
      })()),
  };
}
