from memgpt_core import plugins


def test_registered():
    wrappers = plugins.get_wrappers()
    assert "llama3" in wrappers and "llama3-grammar" in wrappers
    assert plugins.plugin_of("wrappers", "llama3") == "memgpt-wrappers-llama3"
