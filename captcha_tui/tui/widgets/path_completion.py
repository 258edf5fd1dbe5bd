"""Path completion on Tab that leaves Enter alone.

textual-autocomplete's PathAutoComplete also completes on Enter while its dropdown is open, so typing a
folder name and pressing Enter would complete to its first file instead of reading the folder. Here
Enter closes the dropdown and lets the Input submit exactly what was typed; Tab and the arrows complete.
"""

from __future__ import annotations

from textual import events
from textual_autocomplete import PathAutoComplete


class TabPathCompletion(PathAutoComplete):
    def _listen_to_messages(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and event.key == "enter":
            self.action_hide()
            return
        super()._listen_to_messages(event)
