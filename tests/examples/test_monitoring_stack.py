"""The monitoring stack's acceptance (examples/monitoring-stack/ACCEPTANCE.md).

Loaded as the other examples' are (tests/examples/acceptance.py's `load`, on the examples
branch); the few lines below do the same until both branches meet.
"""

import importlib.util
import sys

from tests.helpers import ROOT

_path = ROOT / "examples" / "monitoring-stack" / "acceptance.py"
_spec = importlib.util.spec_from_file_location("examples_monitoring_stack_acceptance", _path)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _module
_spec.loader.exec_module(_module)
globals().update({k: v for k, v in vars(_module).items() if not k.startswith("_")})
