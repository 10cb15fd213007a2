#!/usr/bin/env node
// Placeholder until its issue lands: prints --help.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';

await yargs(hideBin(process.argv)).scriptName('sink').demandCommand(1).strict().help().parseAsync();
