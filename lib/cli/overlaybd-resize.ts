#!/usr/bin/env node
import { resizeCommand } from './resize.js';
import { runCommand } from './run.js';

runCommand(resizeCommand);
