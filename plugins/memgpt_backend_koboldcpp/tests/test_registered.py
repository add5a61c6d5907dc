from memgpt_core import plugins


def test_registered():
    assert "koboldcpp" in plugins.get_backends()
