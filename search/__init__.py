"""Ray Tune search over the spaces of ``spaces``: the only package that imports ray."""
