"""`python -m gap_ls` runs the same command line as the `gap-ls` script."""

from gap_ls.cli import main

raise SystemExit(main())
