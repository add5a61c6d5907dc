from memgpt_core import plugins


def test_registered():
    wrappers = plugins.get_wrappers()
    assert "zephyr-7B" in wrappers and "zephyr-7B-grammar" in wrappers
    assert plugins.plugin_of("wrappers", "zephyr-7B") == "memgpt-wrappers-zephyr"
