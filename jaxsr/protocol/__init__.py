"""The SR benchmark contract: MATLAB-compatible bicubic resizing, BT.601 colour,
the degradation that makes LR from HR, and PSNR/SSIM on the Y channel.

A leaf of the package: it imports NumPy and JAX only, so every other layer
(data, models, evaluation, reports) shares one definition of the protocol.
"""
