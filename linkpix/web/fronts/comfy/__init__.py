"""linkpix/web/fronts/comfy"""
