#!/usr/bin/env node
import { convertorCommand } from './convertor-command.js';
import { runCommand } from './run.js';

runCommand(convertorCommand);
