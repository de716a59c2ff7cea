"""Edits at the source's full resolution: `editor` runs one like any request (the source downscaled for the
model), `finish` turns the model's output into the result (`lut`: a 3D LUT fitted from the small pair,
`fit`: whether a colour table alone reproduces the edit, `resize`: the model's working size)."""
