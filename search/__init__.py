"""Ray Tune search over the spaces of ``spaces``: the only package that imports ray."""

from chores.bytecode import use_bytecode_cache

use_bytecode_cache()  # before ray and torch are imported (and before Ray's workers inherit the environment)
