"""pytest wiring of the Helm chart tests; the machinery lives in chartkit.py."""

from chartkit import sentinel_bin  # noqa: F401  (the session fixture)
