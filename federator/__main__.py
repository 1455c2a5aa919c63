"""`python -m federator` runs the same CLI as the `federator` command."""

from federator.cli import main

raise SystemExit(main())
