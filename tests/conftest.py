"""Shared test setup: the smoke profile and an absolute data mirror, also for notebook kernels."""

import os
from pathlib import Path

# Tests and the notebooks they run default to the tiny profile; CI sets it explicitly too.
os.environ.setdefault("LLM_PROFILE", "smoke")

# nbval starts each notebook's kernel in notebooks/, so a relative mirror path (CI passes
# ../shared/data) must be made absolute before any kernel inherits the environment.
if os.environ.get("LLM_DATA_MIRROR"):
    os.environ["LLM_DATA_MIRROR"] = str(Path(os.environ["LLM_DATA_MIRROR"]).resolve())
