#!/usr/bin/env node
import { createCommand } from './create.js';
import { runCommand } from './run.js';

runCommand(createCommand);
