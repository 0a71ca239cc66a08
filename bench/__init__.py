"""The qzpay benchmark harness: ``uv run python -m bench --help``."""
