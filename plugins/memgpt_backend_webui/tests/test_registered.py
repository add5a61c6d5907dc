from memgpt_core import plugins


def test_registered():
    assert "webui" in plugins.get_backends()
