"""`python -m arenastack_operator`: see arenastack_operator.config for flags and variables."""

import sys

from arenastack_operator.main import main

sys.exit(main())
