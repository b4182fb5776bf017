// The `strata` command: one binary, every role (server, agent, dev) and the CLI,
// a thin client of the public /v1 API.
import { Command } from 'commander';
import { VERSION } from '../lib/version.ts';
import { agentCommand } from './agent.ts';
import { completionCommand } from './completion.ts';
import { contextCommand, loginCommand, whoamiCommand } from './contexts.ts';
import { devCommand } from './dev.ts';
import { eventsCommand } from './events.ts';
import { groupCommand } from './groups.ts';
import { secretCommand } from './secrets.ts';
import { hostCommand } from './hosts.ts';
import { instanceCommand, runCommand } from './instances.ts';
import { joinTokenCommand } from './join-tokens.ts';
import { projectCommand } from './projects.ts';
import { runCli } from './run.ts';
import { serverCommand } from './server.ts';
import { consoleCommand, execCommand, logsCommand } from './streams.ts';
import { tokenCommand } from './tokens.ts';
import { userCommand } from './users.ts';

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

program.commandsGroup('Roles:');
program.addCommand(serverCommand());
program.addCommand(devCommand());
program.addCommand(agentCommand());

program.commandsGroup('Workloads:');
program.addCommand(runCommand());
program.addCommand(instanceCommand());
program.addCommand(groupCommand());
program.addCommand(secretCommand());
program.addCommand(logsCommand());
program.addCommand(execCommand());
program.addCommand(consoleCommand());
program.addCommand(eventsCommand());

program.commandsGroup('Cluster:');
program.addCommand(projectCommand());
program.addCommand(userCommand());
program.addCommand(tokenCommand());
program.addCommand(hostCommand());
program.addCommand(joinTokenCommand());

program.commandsGroup('Client:');
program.addCommand(loginCommand());
program.addCommand(contextCommand());
program.addCommand(whoamiCommand());
program.addCommand(completionCommand(program));

await runCli(program, process.argv);
