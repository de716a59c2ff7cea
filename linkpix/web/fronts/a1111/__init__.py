"""linkpix/web/fronts/a1111"""
