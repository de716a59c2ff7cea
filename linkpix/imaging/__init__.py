"""linkpix/imaging"""
