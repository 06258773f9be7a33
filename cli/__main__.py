"""``python -m cli``: the ``ordernotify`` command from a checkout, without the installed console script."""

import sys

from cli.main import main

sys.exit(main())
