from memgpt_core import plugins


def test_registered():
    assert "llamacpp" in plugins.get_backends()
