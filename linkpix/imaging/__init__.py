"""Pixels and files, with no knowledge of requests: `photo` (checking and decoding input images, masks),
`encode` (PNG/JPEG/WebP output, metadata stripping), `textdraw` (text in any script on the simulator's
cards and error images)."""
