/**
 * The `explicit-sync` command line. Each subcommand is a CliCommand in its own module, listed in
 * COMMANDS; adding one (e.g. `doctor`) means writing its module and adding it there.
 */
import { doctorCommand } from './doctor';
import { vmCommand } from './vm/command';

/** A subcommand of the CLI. */
export interface CliCommand {
  name: string;
  /** One line for `explicit-sync help`. */
  summary: string;
  /** Runs with the arguments after the subcommand's name; resolves to the process exit status. */
  run(argv: readonly string[]): Promise<number>;
}

const COMMANDS: readonly CliCommand[] = [vmCommand, doctorCommand];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length), 'help'.length);
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  lines.push(`  ${'help'.padEnd(width)}  show this help, or \`help <command>\` for a command's options`);
  return `Usage: explicit-sync <command> [options]\n\nCommands:\n${lines.join('\n')}\n`;
}

/** Runs the CLI; resolves to the exit status (it never calls process.exit). */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const topic = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    if (topic !== undefined) return topic.run(['--help']);
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    process.stderr.write(`explicit-sync: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`explicit-sync: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
