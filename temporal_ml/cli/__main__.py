"""``python -m temporal_ml.cli``: the ``temporal-ml`` command."""

import sys

from temporal_ml.cli._main import main

sys.exit(main())
