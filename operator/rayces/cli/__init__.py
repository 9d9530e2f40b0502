"""`raycesctl`, the command line every operator Job runs: a thin shell over `rayces.migrations`.

How it is put together (Alembic's `CommandLine` is the model: arguments in, one function call,
the answer out):

- `main.py`: the entry point and `COMMAND_GROUPS`, the list of command-group modules;
- `parser.py`: the top-level parser and the option groups commands share (database, output,
  locking and timeouts, values for the revisions), and the exit-code and environment help;
- `invocation.py`: one parsed command line with the settings read from the environment once,
  and what commands derive from them (the database URL, the embedded data directory, `-x`);
- `output.py`: text for people, JSON on stdout, the Kubernetes termination message, stderr;
  every byte written passes through it, so no password can leave the process;
- `dispatch.py`: runs the chosen command with SIGINT/SIGTERM handling, and turns every failure,
  foreseen or not, into a one-line error, the JSON result and an exit code;
- one module per command group: `migration_commands.py` (migrate, rollback, stamp),
  `inspection_commands.py` (status, plan), `schema_commands.py` (schema dump),
  `embedded_commands.py` (embedded start/stop/status), `tenant_commands.py` (seed, tenant
  archive/purge, verify).

Adding a command group is one module and one line:

1. write `rayces/cli/<group>_commands.py` with
   `add_parsers(commands: Subcommands, options: SharedOptions) -> None`, which adds its
   commands with `parser.add_command(commands, ...)` (parents from `options`) and sets
   `handler=` on each to a function `(Invocation) -> int` that calls one function of the layer
   below and reports through `invocation.output`; raise a `MigrationsError` (or let one through)
   for failures: dispatch reports it (a nested command names itself in results with
   `set_defaults(result_command="tenant archive")`; a group whose results have their own shape
   passes `failure_result=` to `add_command`, as `tenant_commands` does, so its failures keep
   that shape);
2. add the module to `COMMAND_GROUPS` in `main.py`.

Import SQLAlchemy, Alembic, psycopg, kopf or kubernetes only inside handlers:
`raycesctl --help` imports none of them (a test checks), and every Job pays for start-up.
"""
