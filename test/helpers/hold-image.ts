/**
 * Child process for test/locks.test.ts: opens the image whose spec is
 * argv[2] (JSON), prints "open" (or "error CODE"), and holds it until stdin
 * closes.
 */
import { openImage } from '../../lib/image.js';
import { OverlaybdError } from '../../lib/errors.js';

try {
  const img = await openImage(JSON.parse(process.argv[2] ?? '{}'));
  process.stdout.write('open\n');
  process.stdin.resume();
  process.stdin.on('end', async () => {
    await img.close();
    process.exit(0);
  });
} catch (e) {
  process.stdout.write(`error ${e instanceof OverlaybdError ? e.code : String(e)}\n`);
  process.exit(0);
}
