"""watchdog: policy engine and LLM-as-judge watchdog for AI coding agents.

This module holds the version only and imports nothing, so that `import watchdog` stays free on
the hook path.
"""

__version__ = "0.1.0"
