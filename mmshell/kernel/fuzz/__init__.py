"""`mmshell kernel fuzz`: the live kernel as a random oracle for the simulator (mainline mode).

* `generate.py`: random scripts of kernel-observable commands, deterministic per seed, each
  command tried in the simulator first so that few are refused, with `expect` lines of what
  the simulator predicts;
* `shrink.py`: delta debugging of a script against a predicate (pure: no kernel, no simulator);
* `known.py`: the declared table of differences the simulator does not model on purpose;
* `run.py`: the command: generate, compare through `kernel diff` (`diff.diff_script`), and on
  the first unexplained difference confirm it, shrink it and save the minimal script.
"""
