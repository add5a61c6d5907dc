from memgpt_core import plugins


def test_registered():
    backends = plugins.get_backends()
    assert "lmstudio" in backends and "lmstudio-legacy" in backends
    assert plugins.plugin_of("backends", "lmstudio-legacy") == plugins.plugin_of("backends", "lmstudio")
