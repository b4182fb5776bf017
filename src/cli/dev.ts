// `strata dev`: a server and a local agent in one command.
import { Command } from 'commander';

export function devCommand(): Command {
  return new Command('dev').description('run a server and a local agent with embedded defaults');
}
