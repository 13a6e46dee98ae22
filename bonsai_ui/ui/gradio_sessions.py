"""A new visitor's session, made cheap: Gradio's per-session copy of the page's config, made lazily.

For every new session (a visitor's first event, and every API call without one), Gradio 6.31's
``SessionState.__init__`` computes the config of every block of the page, to be able to rebuild
the page for a deep link (``/gradio_api/deep_link``, ``SessionState.components``). This page has
~210 blocks: measured on this project's 2-vCPU machine, **30 ms of CPU and 334 kB of memory a new
session** (``bench/session_cost.py``; lazily: 0.6 ms and 16 kB). It runs on the server's event
loop, so eight visitors arriving together wait for each other's (~0.2 s for the eighth), and it
was the whole of the ~0.36 MB a session that the 10,000-session soak saw until Gradio's session
capacity dropped old sessions (docs/benchmarks.md).

``lazy_deep_link_configs`` makes that copy per block on first use: a session starts with no
configs; the places where Gradio writes one (an update of a component, ``__setitem__``,
``_update_config``, ``_update_value_in_config``) already compute a missing one; reading all of
them (``components``, for a deep link) first computes the blocks not yet copied, from the same
``blocks_config`` the eager copy read. What a deep link returns is unchanged
(``tests/test_sessions.py`` checks the configs against Gradio's own).

The patch replaces two methods of a pinned dependency's class, so it checks first that they are
the ones it was written against (their source's hash) and otherwise leaves Gradio alone and says
so on stderr — never a silent change of behaviour.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
from copy import copy

# sha256 of the source of gradio 6.31.0's SessionState.__init__ and .components: the code this
# module replaces.
GRADIO_SOURCE_SHA256 = "dbe016df9ed3efb6158f913d7857e45b967318763ba1a70e16b47d49db806bda"


EAGER: dict = {}  # Gradio's own methods, kept once replaced


def _source_hash() -> str:
    from gradio.state_holder import SessionState

    source = inspect.getsource(SessionState.__init__) + inspect.getsource(SessionState.components.fget)
    return hashlib.sha256(source.encode()).hexdigest()


def _lazy_init(self, blocks) -> None:
    """gradio 6.31.0's SessionState.__init__ without the eager ``config_values`` comprehension."""
    self.blocks_config = copy(blocks.default_config)
    self.config_values = {}
    self._config_ids = [k for k in self.blocks_config.blocks if k in blocks.blocks]
    self.state_data = {}
    self._state_ttl = {}
    self.is_closed = False
    self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600


def _components(self):
    """Every block's config, in the eager copy's order (the page's blocks, then blocks added
    since), with the values updated since."""
    configs = self.config_values
    for k in self._config_ids:
        if k not in configs and k in self.blocks_config.blocks:
            configs[k] = self.blocks_config.config_for_block(k, [], self.blocks_config.blocks[k])
    first = [k for k in self._config_ids if k in configs]
    known = set(self._config_ids)
    later = [k for k in configs if k not in known]
    for k in first + later:
        if configs[k]:
            yield configs[k]


def lazy_deep_link_configs() -> bool:
    """Install the lazy per-session copy (idempotent). False, with a line on stderr, where the
    installed Gradio's method is not the one this was written against."""
    from gradio.state_holder import SessionState

    if getattr(SessionState, "_bonsai_lazy", False):
        return True
    found = _source_hash()
    if found != GRADIO_SOURCE_SHA256:
        print("warning: Gradio's SessionState.__init__ is not the one bonsai_ui/ui/gradio_sessions.py "
              f"was written for (sha256 {found[:12]}…): new sessions keep Gradio's eager config copy "
              "(~30 ms of CPU and ~0.33 MB each on 2 vCPUs)", file=sys.stderr)
        return False
    EAGER.update(init=SessionState.__init__, components=SessionState.components)  # for the tests
    SessionState.__init__ = _lazy_init
    SessionState.components = property(_components)
    SessionState._bonsai_lazy = True
    return True
