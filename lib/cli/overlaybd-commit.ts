#!/usr/bin/env node
import { commitCommand } from './commit.js';
import { runCommand } from './run.js';

runCommand(commitCommand);
