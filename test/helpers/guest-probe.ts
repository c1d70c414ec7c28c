/**
 * Run in the qemu guest by guest-smoke.test.ts: proves the repo's own
 * TypeScript (and its node_modules) loads under the guest kernel. Prints one
 * JSON line: the kernel release and a config parsed by lib/config.ts.
 */
import os from 'node:os';
import { ImageConfigSchema, parseWith } from '../../lib/config.js';

const config = parseWith(ImageConfigSchema, { lowers: [{ file: '/l0' }], upper: { data: '/u.data' } }, 'guest-probe');
console.log(JSON.stringify({ release: os.release(), lowers: config.lowers.length, upper: config.upper?.data }));
