"""Runs when componentize-py's interpreter starts, before the app module is
imported: puts this directory (wmp's `multiprocessing`, and wmp_main)
ahead of the standard library on sys.path, so `import multiprocessing`
in the program is wmp's."""

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [_here] + [entry for entry in sys.path if entry != _here]
