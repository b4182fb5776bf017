// The `strata` command: one binary, every role (server, agent, dev) and the CLI.
import { Command } from 'commander';
import { VERSION } from '../lib/version.ts';
import { agentCommand } from './agent.ts';
import { devCommand } from './dev.ts';
import { serverCommand } from './server.ts';

const program = new Command('strata')
  .description('Strata: one compute service for containers, VMs and bare-metal servers')
  .version(VERSION)
  .showHelpAfterError('(run with --help for usage)');

program.addCommand(serverCommand());
program.addCommand(devCommand());
program.addCommand(agentCommand());

await program.parseAsync(process.argv);
