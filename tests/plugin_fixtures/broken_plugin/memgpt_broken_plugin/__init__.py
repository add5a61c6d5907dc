"""A memgpt plugin that fails on import, on purpose (a test fixture)."""

raise RuntimeError("memgpt-broken-plugin fails on import on purpose\nsecond line that the listing must not show")
