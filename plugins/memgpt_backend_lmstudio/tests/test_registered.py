from memgpt_core import plugins


def test_registered():
    assert "lmstudio" in plugins.get_backends()
