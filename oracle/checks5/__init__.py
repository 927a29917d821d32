"""The MQTT 5.0 conformance checks, registered only for ``--protocol 5``.

Each cites 5.0 statement ids (statements-5.0.json), which 3.1.1's numbering does not
share. Importing this package registers them in ``scenario.REGISTRIES["5.0"]``: every
module of the package is imported, in name order, so a new module of checks needs no
line here and the order of the report does not depend on who added what first.
"""

import importlib
import pkgutil

MODULES: list[str] = sorted(
    module.name for module in pkgutil.iter_modules(__path__) if not module.name.startswith("_")
)
"""The modules of checks, each imported once for the checks it registers."""

for _name in MODULES:
    importlib.import_module(f"{__name__}.{_name}")
