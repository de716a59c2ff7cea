"""linkpix/pipeline"""
