"""Hosted image APIs beside the ComfyUI pool (issue 26): OpenAI-compatible images APIs and BFL's FLUX API.

A provider run takes the values a workflow was resolved with (prompt, negative, size, seed, the input image
and mask) instead of a graph, and gives back image bytes; everything around it (the cache, single-flight,
jobs, keys, rate limits, the edit finish at full resolution) is the same as for a ComfyUI run.
Modules: `spec` (the `providers` setting and `<provider>:<model>` references), `calls` (HTTP with a timeout,
a retry budget and the translation of provider errors), `openai_images`, `bfl`, `hosted` (the choice and the
run, with cost counting).
"""
