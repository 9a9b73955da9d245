"""Deprecated: moved to :mod:`temporal_ml.starting`; this name goes in the next release."""

import warnings

from temporal_ml.starting import *  # noqa: F403 - the same names
from temporal_ml.starting import __all__  # noqa: F401

warnings.warn("temporal_ml.cli_start moved to temporal_ml.starting (this name goes in the next release)",
              DeprecationWarning, stacklevel=2)
