"""Start coverage in every Python process the tests start, when COVERAGE_PROCESS_START
names a config (tests/conftest.py sets it under scripts/test).

This directory goes first on those processes' PYTHONPATH; Python imports sitecustomize at
start-up, before the add-on's own code, and its children inherit the environment.
"""

import coverage

coverage.process_startup()
