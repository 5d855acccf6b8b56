"""Training configs, one file per model; `common` holds their shared shape.

A package so that config files loaded by path (`--config=configs/eeds.py`)
can `from configs import common` from any working directory once jaxsr is
installed.
"""
