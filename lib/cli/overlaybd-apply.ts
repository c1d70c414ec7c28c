#!/usr/bin/env node
import { applyCommand } from './apply.js';
import { runCommand } from './run.js';

runCommand(applyCommand);
