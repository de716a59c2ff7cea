"""linkpix/ops"""
