"""ComfyUI's own API over LinkPix's pipeline: `routes` (the blueprint: prompt, queue, history, websocket),
`fileroutes` (view, upload), `info` (object_info, system_stats, models), `runs` (prompts and history per
user), `files` (uploaded inputs), `ws` (the websocket's messages)."""
