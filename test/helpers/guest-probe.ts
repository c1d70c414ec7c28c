/**
 * Run in the qemu guest by guest-smoke.test.ts: proves the repo's own
 * TypeScript loads under the guest kernel through tsx. Prints one JSON line:
 * the kernel release and an error built by lib/errors.ts. Kept to a module
 * with no dependencies: under TCG, loading zod alone costs about 8 s.
 */
import os from 'node:os';
import { OverlaybdError } from '../../lib/errors.js';

const err = new OverlaybdError('EIO', 'guest probe');
console.log(JSON.stringify({ release: os.release(), code: err.code, category: err.category }));
