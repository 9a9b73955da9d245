"""``python -m temporal_ml.cli``: the ``temporal-ml`` command."""

import sys

from temporal_ml.cli._main import main

if __name__ == "__main__":
    sys.exit(main())
