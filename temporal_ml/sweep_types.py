"""Deprecated: moved to :mod:`temporal_ml.sweeps`; this name goes in the next release."""

import warnings

from temporal_ml.sweeps import *  # noqa: F403 - the same names
from temporal_ml.sweeps import RERUN, __all__, duration_text, rung_record  # noqa: F401

warnings.warn("temporal_ml.sweep_types moved to temporal_ml.sweeps (this name goes in the next release)",
              DeprecationWarning, stacklevel=2)
