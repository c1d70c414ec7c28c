// Worker-thread entry for test/helpers/lifetime-child.ts: Node 20 does not
// pass the tsx loader on to workers, so register it here, then load the
// TypeScript module named in workerData.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.module);
