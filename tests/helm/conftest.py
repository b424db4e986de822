"""pytest wiring of the Helm chart tests; the machinery lives in chartkit.py and podkit.py."""

from chartkit import sentinel_bin  # noqa: F401  (the session fixture)
from podkit import agent_image, codex_app_image  # noqa: F401  (session fixtures: images built once)
