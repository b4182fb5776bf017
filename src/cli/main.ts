// The `strata` command: one binary, every role (server, agent, dev) and the CLI,
// a thin client of the public /v1 API. Only the command being run is loaded
// (src/cli/commands.ts).
import { VERSION } from '../lib/version.ts';

const args = process.argv.slice(2);
if (args[0] === '--version' || args[0] === '-V') {
  // Commander's answer, before commander itself loads (about 15 ms).
  process.stdout.write(`${VERSION}\n`);
} else {
  const { Command } = await import('commander');
  const { addCommands } = await import('./commands.ts');
  const { runCli } = await import('./run.ts');
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
  await addCommands(program, args);
  await runCli(program, process.argv);
}
