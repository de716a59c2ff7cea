"""Stage 3: workflow templates, their bindings (placeholders, sidecars, detection), UI-format conversion and styles."""
