"""`python -m sorawatch` runs the command line."""

from sorawatch.cli.main import main

main()
