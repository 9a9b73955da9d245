"""Package layout (all other metadata is in pyproject.toml).

The wheel ships two trees: the library (``temporal_ml`` and its subpackages) and the repository's
top-level ``examples/`` directory as ``temporal_ml._examples``, so ``pip install "temporal-ml[examples]"``
can run them (``temporal-ml example list|run|worker``) without a clone and without a top-level
``examples`` package in site-packages. In a clone they stay ``python -m examples.<name>.starter``.
"""

from setuptools import find_packages, setup

BUNDLED_EXAMPLES = "temporal_ml._examples"

setup(
    packages=[
        *find_packages(include=["temporal_ml", "temporal_ml.*"]),
        BUNDLED_EXAMPLES,
        *(f"{BUNDLED_EXAMPLES}.{name}" for name in find_packages("examples")),
    ],
    package_dir={BUNDLED_EXAMPLES: "examples"},
)
