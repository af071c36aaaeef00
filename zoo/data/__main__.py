"""``python -m zoo.data [--data-dir DIR]``: the table of every registered dataset."""

import sys

from zoo.data.prepare import main

sys.exit(main())
