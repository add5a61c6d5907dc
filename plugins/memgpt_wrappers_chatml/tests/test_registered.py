from memgpt_core import plugins


def test_registered():
    assert plugins.get_wrappers()
