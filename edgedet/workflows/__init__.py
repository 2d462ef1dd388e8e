"""Workflows that combine the tools of layer 3 (export, quantize, evaluate, benchmark): the demo,
the deployment matrix and evaluation of any model file. Nothing below imports this package."""
