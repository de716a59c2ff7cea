"""Workflow files made ready to run: templates and their bindings (`workflows`, `placeholders`, `detect`),
UI-format conversion (`uiformat`) and styles (`styles`)."""
