"""TEST HARNESS ONLY, never shipped: loaded by the Windows CPython that runs the Wine tests.

Python 3.13's ``platform`` asks WMI (the ``_wmi`` extension) for the Windows version; Wine 8.0's
WMI calls the unimplemented ``propsys.VariantToString`` and the process hangs in Wine's debugger.
With ``_wmi`` marked missing, ``platform`` falls back to its pre-3.12 way (the registry and
``sys.getwindowsversion``), as it does on a Windows without WMI.
"""

import sys

sys.modules["_wmi"] = None
