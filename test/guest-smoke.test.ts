/**
 * The qemu guest the TCMU and ublk tests run in (test/helpers/qemu-guest.ts):
 * one boot per kernel checks that the host's node and the repo's TypeScript
 * run under the guest kernel and that the kernel features are there
 * (target_core_user + tcm_loop + configfs on 6.1, ublk_drv on 6.12), and that
 * the script's results reach the host through the shared dir.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runInGuest, type GuestKernel } from './helpers/qemu-guest.js';

const share = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-guest-smoke-'));
afterAll(() => fs.rmSync(share, { recursive: true, force: true }));

// Every check prints `name=value`; `set -e` is off so one failure doesn't hide the rest.
const common = `
echo "node=$(node -e 'console.log(require("os").release())')"
echo "configfs=$(awk '$2 == "/sys/kernel/config" { print $3 }' /proc/mounts)"
echo "probe=$(node --import tsx test/helpers/guest-probe.ts)"
echo "left-by-guest $(uname -r)" > "$GUEST_SHARE/result.txt"
`;
const perKernel: Record<GuestKernel, string> = {
  '6.1': `
modprobe -a target_core_user tcm_loop && echo "tcmu=ok"
test -d /sys/kernel/config/target/core && echo "target=ok"
# A fabric's configfs dir appears on mkdir (LIO then binds tcm_loop to it).
mkdir /sys/kernel/config/target/loopback && echo "loopback=ok" && rmdir /sys/kernel/config/target/loopback
`,
  '6.12': `
modprobe ublk_drv && echo "ublk=ok"
test -c /dev/ublk-control && echo "ublk-control=ok"
modprobe -a target_core_user tcm_loop && echo "tcmu=ok"
`,
};

function fields(stdout: string): Record<string, string> {
  return Object.fromEntries(stdout.split('\n').flatMap((l) => (/^[\w-]+=/.test(l) ? [[l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]] : [])));
}

describe('qemu guest', () => {
  for (const kernel of ['6.1', '6.12'] as const) {
    it(`boots ${kernel} and runs node, the repo's TS and the kernel modules`, { timeout: 240_000 }, async () => {
      const r = await runInGuest({ kernel, script: common + perKernel[kernel], timeoutMs: 180_000, shareDir: share });
      console.log(`guest ${kernel}: ${r.ms} ms wall (boot, checks, poweroff)`);
      expect(r.code, r.stdout).toBe(0);
      const f = fields(r.stdout);
      expect(f.node, r.stdout).toMatch(new RegExp(`^${kernel.replace('.', '\\.')}\\.`));
      expect(f.configfs).toBe('configfs');
      expect(JSON.parse(f.probe ?? 'null')).toEqual({ release: f.node, code: 'EIO', category: 'io' });
      expect(f.tcmu).toBe('ok');
      if (kernel === '6.1') expect([f.target, f.loopback]).toEqual(['ok', 'ok']);
      else expect([f.ublk, f['ublk-control']]).toEqual(['ok', 'ok']);
      expect(fs.readFileSync(path.join(share, 'result.txt'), 'utf8')).toBe(`left-by-guest ${f.node}\n`);
    });
  }

  it('kills a guest that overruns its timeout', { timeout: 60_000 }, async () => {
    // Killed during boot: cheap, and the same path as a script that hangs.
    const start = Date.now();
    await expect(runInGuest({ kernel: '6.1', script: 'sleep 600', timeoutMs: 3000 })).rejects.toThrow(/timed out after 3000 ms/);
    expect(Date.now() - start).toBeLessThan(30_000);
  });
});
