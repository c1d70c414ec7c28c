/**
 * The FUSE devices a test file attaches, so an afterEach can detach what a
 * failed test left, and the config files those tests write.
 */
import fs from 'node:fs';
import path from 'node:path';
import { attachDevice, type AttachedDevice } from '../../lib/device/index.js';

export class FuseDevices {
  readonly attached = new Set<AttachedDevice>();
  /** `runDir` is read at each attach (test files make it in beforeAll). */
  constructor(private readonly runDir: () => string) {}

  async attach(configPath: string): Promise<AttachedDevice> {
    const d = await attachDevice(configPath, { runDir: this.runDir() });
    this.attached.add(d);
    return d;
  }

  async detach(d: AttachedDevice): Promise<void> {
    await d.detach();
    this.attached.delete(d);
  }

  /** Detaches everything still attached, ignoring failures (cleanup). */
  async detachAll(): Promise<void> {
    for (const d of this.attached) await d.detach().catch(() => {});
    this.attached.clear();
  }
}

/** Writes `config` as `<dir>/<name>.json` and returns the path. */
export function writeConfig(dir: string, name: string, config: object): string {
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}
