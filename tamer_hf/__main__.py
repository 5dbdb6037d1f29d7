"""`python -m tamer_hf <command> ...` (and `accelerate launch -m tamer_hf <command> ...`): the `tamer` command."""

import sys

from .cli import main

sys.exit(main())
