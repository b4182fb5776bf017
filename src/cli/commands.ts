// The commands of `strata`, by name, in the order help lists them. Each is
// loaded only when it may run: a command's module (and what it imports) is
// Node's to load and compile, and a command should cost what it uses, not
// what the whole CLI holds. Help, completion and an unknown name load them all.
import type { Command } from 'commander';

export interface Entry {
  /** the name, then its aliases, as the command defines them */
  names: string[];
  load: (program: Command) => Promise<Command>;
}

export const sections: { title: string; commands: Entry[] }[] = [
  {
    title: 'Roles:',
    commands: [
      { names: ['server'], load: async () => (await import('./server.ts')).serverCommand() },
      { names: ['dev'], load: async () => (await import('./dev.ts')).devCommand() },
      { names: ['agent'], load: async () => (await import('./agent.ts')).agentCommand() },
    ],
  },
  {
    title: 'Workloads:',
    commands: [
      { names: ['run'], load: async () => (await import('./instances.ts')).runCommand() },
      { names: ['instance', 'instances'], load: async () => (await import('./instances.ts')).instanceCommand() },
      {
        names: ['deployment', 'deployments'],
        load: async () => (await import('./deployments.ts')).deploymentCommand(),
      },
      { names: ['rollout'], load: async () => (await import('./rollouts.ts')).rolloutCommand() },
      { names: ['apply'], load: async () => (await import('./apply.ts')).applyCommand() },
      { names: ['diff'], load: async () => (await import('./apply.ts')).diffCommand() },
      { names: ['delete'], load: async () => (await import('./apply.ts')).deleteCommand() },
      { names: ['group', 'groups'], load: async () => (await import('./groups.ts')).groupCommand() },
      { names: ['secret', 'secrets'], load: async () => (await import('./secrets.ts')).secretCommand() },
      { names: ['logs'], load: async () => (await import('./streams.ts')).logsCommand() },
      { names: ['exec'], load: async () => (await import('./streams.ts')).execCommand() },
      { names: ['console'], load: async () => (await import('./streams.ts')).consoleCommand() },
      { names: ['events'], load: async () => (await import('./events.ts')).eventsCommand() },
    ],
  },
  {
    title: 'Cluster:',
    commands: [
      { names: ['project', 'projects'], load: async () => (await import('./projects.ts')).projectCommand() },
      { names: ['user', 'users'], load: async () => (await import('./users.ts')).userCommand() },
      { names: ['token', 'tokens'], load: async () => (await import('./tokens.ts')).tokenCommand() },
      { names: ['host', 'hosts'], load: async () => (await import('./hosts.ts')).hostCommand() },
      { names: ['node', 'nodes'], load: async () => (await import('./nodes.ts')).nodeCommand() },
      {
        names: ['join-token', 'join-tokens'],
        load: async () => (await import('./join-tokens.ts')).joinTokenCommand(),
      },
    ],
  },
  {
    title: 'Client:',
    commands: [
      { names: ['login'], load: async () => (await import('./contexts.ts')).loginCommand() },
      { names: ['context'], load: async () => (await import('./contexts.ts')).contextCommand() },
      { names: ['whoami'], load: async () => (await import('./contexts.ts')).whoamiCommand() },
      // Completion walks every command, so asking for it loads them all.
      { names: ['completion'], load: async program => (await import('./completion.ts')).completionCommand(program) },
    ],
  },
];

/**
 * Adds to the program the commands `args` (the words after `strata`) may run:
 * none for --version, the one named first, or every one (no name, help,
 * completion, or a name commander should answer with a suggestion).
 */
export async function addCommands(program: Command, args: string[]): Promise<void> {
  const first = args[0];
  if (first === '--version' || first === '-V') return;
  const named = sections.flatMap(s => s.commands).find(c => first !== undefined && c.names.includes(first));
  const all = !named || named.names[0] === 'completion';
  for (const s of sections) {
    const wanted = s.commands.filter(c => all || c === named);
    const commands = await Promise.all(wanted.map(c => c.load(program)));
    program.commandsGroup(s.title);
    for (const c of commands) program.addCommand(c);
  }
}
