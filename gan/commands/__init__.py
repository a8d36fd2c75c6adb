"""The `gan` command line: one module per command, each holding its click command (options,
help, examples) and calling library functions. Nothing in the library imports from here;
`gan/commands/main.py` assembles the group. Library imports sit inside the command functions, so
`gan --help` stays fast and imports no torch."""
