"""Studies on top of the simulator: compare designs, sweep them, find which assumption decides the
verdict, plan capacity. `sim` stays the engine; everything here calls it and never the reverse."""

from studies.compare import compare, forest_plot
from studies.evaluate import DesignResult, evaluate
from studies.sweep import sweep
from studies.variants import VariantError, apply, expand_grid

__all__ = ["DesignResult", "VariantError", "apply", "compare", "evaluate", "expand_grid",
           "forest_plot", "sweep"]
