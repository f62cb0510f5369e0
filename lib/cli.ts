/**
 * The `explicit-sync` command line. Each subcommand is a module that registers a CliCommand with
 * the registry (lib/cli/registry.ts); this entry point imports them, in `help` order, and
 * dispatches. Adding one means writing its module and importing it here.
 */
import { findCommand, registeredCommands } from './cli/registry';
import './vm/command';
import './doctor';
import './cli/trace';
import './cli/inspect';

export type { CliCommand } from './cli/registry';

function usage(): string {
  const commands = registeredCommands();
  const width = Math.max(...commands.map((c) => c.name.length), 'help'.length);
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  lines.push(`  ${'help'.padEnd(width)}  show this help, or \`help <command>\` for a command's options`);
  return `Usage: explicit-sync <command> [options]\n\nCommands:\n${lines.join('\n')}\n`;
}

/** Runs the CLI; resolves to the exit status (it never calls process.exit). */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const topic = name === 'help' && rest[0] !== undefined ? findCommand(rest[0]) : undefined;
    if (topic !== undefined) return topic.run(['--help']);
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = findCommand(name);
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
