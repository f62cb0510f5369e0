/**
 * The CLI's commands, registered by their own modules: a command depends on this registry, never
 * on the entry point (lib/cli.ts), which only imports the command modules and dispatches.
 * @module
 */

/** A subcommand of the CLI. */
export interface CliCommand {
  name: string;
  /** One line for `explicit-sync help`. */
  summary: string;
  /** Runs with the arguments after the subcommand's name; resolves to the process exit status. */
  run(argv: readonly string[]): Promise<number>;
}

const commands: CliCommand[] = [];

/** Adds `command` to the CLI (in registration order in `help`) and returns it. */
export function registerCommand(command: CliCommand): CliCommand {
  if (commands.some((c) => c.name === command.name)) throw new Error(`explicit-sync CLI: command ${command.name} registered twice`);
  commands.push(command);
  return command;
}

/** The registered commands. */
export function registeredCommands(): readonly CliCommand[] {
  return commands;
}

/** The command called `name`, if registered. */
export function findCommand(name: string): CliCommand | undefined {
  return commands.find((c) => c.name === name);
}
