// `strata agent`: turns this machine into a host.
import { Command } from 'commander';

export function agentCommand(): Command {
  return new Command('agent').description('run the host agent');
}
