// The `strata` command: one binary, every role (server, agent, dev) and the CLI,
// a thin client of the public /v1 API. Only the command being run is loaded
// (src/cli/commands.ts).
import { Command } from 'commander';
import { VERSION } from '../lib/version.ts';
import { addCommands } from './commands.ts';
import { runCli } from './run.ts';

const program = new Command('strata')
  .description('Strata: one compute service for containers, VMs and bare-metal servers')
  .version(VERSION)
  // Options of the program are read before the command name only, so each
  // command may define its own (the CLI's -o/-p/--context, dev's --context).
  .enablePositionalOptions()
  .addHelpText(
    'after',
    '\nStart with `strata dev` (a local server and agent), or `strata login URL --token-file FILE`.\n' +
      'Every CLI command takes -o table|json|yaml, -p PROJECT and --context NAME.',
  );

await addCommands(program, process.argv.slice(2));
await runCli(program, process.argv);
