"""Repository-wide pytest set-up: hypothesis profiles and the pytester plugin.

The trt_equiv plugin itself is registered through the ``pytest11`` entry point (pyproject.toml), exactly
as users get it; it is not loaded here a second time.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

# CI: bounded examples, no deadline (model inference time varies with machine load), printed seeds.
settings.register_profile(
    "ci", max_examples=15, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
# Local: more examples for deeper fuzzing.
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
