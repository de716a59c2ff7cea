"""linkpix/run"""
