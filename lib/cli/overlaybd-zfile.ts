#!/usr/bin/env node
import { zfileCommand } from './zfile.js';
import { runCommand } from './run.js';

runCommand(zfileCommand);
