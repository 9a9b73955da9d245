"""Deprecated: moved to :mod:`temporal_ml.progress`; this name goes in the next release."""

import warnings

from temporal_ml.progress import *  # noqa: F403 - the same names
from temporal_ml.progress import __all__  # noqa: F401

warnings.warn("temporal_ml.cli_progress moved to temporal_ml.progress (this name goes in the next release)",
              DeprecationWarning, stacklevel=2)
