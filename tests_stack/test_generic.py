"""The generic stack checks imagegate ships, collected here on this suite's fixtures."""

from __future__ import annotations

from imagegate.suites.test_stack import TestStack, TestStackHttp

__all__ = ["TestStack", "TestStackHttp"]
