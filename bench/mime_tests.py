"""Run the product's message and injection tests against the proposed MIME builder instead of build_message.

``python -m bench.mime_tests``: evidence that ``bench.mime_variants.build_hand_light_check`` keeps every
promise ``consumers.deliver.message.build_message`` is tested for (headers encoded, threading, no injection).
"""

from __future__ import annotations

import sys

import pytest

import consumers.deliver.message
from bench.mime_variants import build_hand_light_check

TESTS = ["tests/consumers/deliver/test_message.py", "tests/consumers/deliver/test_injection.py",
         "tests/consumers/test_properties.py"]

if __name__ == "__main__":
    consumers.deliver.message.build_message = build_hand_light_check  # before the test modules import it by name
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *TESTS]))
