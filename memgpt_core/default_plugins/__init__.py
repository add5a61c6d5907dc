"""Plugins built into memgpt-core. They register through the same hooks as any third-party plugin."""
