from memgpt_core import plugins


def test_registered():
    backends = plugins.get_backends()
    assert "openai" in backends and "vllm" in backends
    assert plugins.plugin_of("backends", "openai") == plugins.plugin_of("backends", "vllm") == "memgpt-backend-openai"
