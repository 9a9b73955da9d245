"""Deprecated: moved to :mod:`temporal_ml.failures`; this name goes in the next release."""

import warnings

from temporal_ml.failures import *  # noqa: F403 - the same names
from temporal_ml.failures import __all__  # noqa: F401

warnings.warn("temporal_ml.cli_errors moved to temporal_ml.failures (this name goes in the next release)",
              DeprecationWarning, stacklevel=2)
