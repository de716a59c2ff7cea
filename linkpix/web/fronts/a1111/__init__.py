"""The AUTOMATIC1111 (sdapi/v1) dialect: `routes` (txt2img, img2img, progress...), `runs` (running ones per
user), `options` (the per-user checkpoint and the lists clients ask for), `names` (A1111's sampler, scheduler and
model names mapped onto ComfyUI's)."""
