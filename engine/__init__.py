"""trueup's headless core: types, rules, store, connectors, sandbox and sync. Never imports a UI."""

import sys as _sys

# httpx imports its own command-line tool (`httpx._main`, built on rich and pygments) whenever rich is
# installed — and rich always is, for the console. The engine never runs httpx's CLI, so when httpx is
# not loaded yet, mark that one module as unavailable: httpx then skips it (it guards the import), and
# the headless engine loads no UI library. `httpx.main` becomes httpx's own "install httpx[cli]" stub.
if "httpx" not in _sys.modules:
    _sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None in sys.modules is the documented "import fails" marker
