"""`python -m sorawatch.cli` runs the command line."""

from sorawatch.cli.main import main

main()
