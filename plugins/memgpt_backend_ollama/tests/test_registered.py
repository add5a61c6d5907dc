from memgpt_core import plugins


def test_registered():
    assert "ollama" in plugins.get_backends()
