"""This package's own tests: memgpt's conformance kit, run against the class and against the registered name."""

import pytest

pytest.importorskip("memgpt_community_alpaca", reason="install it first: pip install tests/community_wrapper")

from memgpt_community_alpaca import AlpacaWrapper

from memgpt_core.testing import WrapperConformance


class TestAlpacaWrapper(WrapperConformance):
    wrapper_class = AlpacaWrapper


class TestAlpacaByName(WrapperConformance):
    wrapper_name = "community-alpaca"
