"""The `sorawatch` command line: one console script, one module per group of commands."""
