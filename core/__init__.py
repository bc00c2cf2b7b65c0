"""The tagging engine: features, the AST model, model files, file analysis, events and exports.

Nothing in this package imports Qt; `app/` is the only Qt package.
"""
