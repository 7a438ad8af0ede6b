"""The app module of a Python guest that runs `multiprocessing` programs:

    componentize-py -d WIT -w command componentize -p guest-python -p DIR wmp_main -o app.wasm
    wmp run app.wasm MODULE [ARGS...]     # as `python -m MODULE ARGS...`

At build time it imports every module of DIR (componentize-py snapshots
the interpreter after that, and a guest has no files to import from at run
time), so their module-level code runs then, behind their
`if __name__ == "__main__":` guards."""

import importlib

from multiprocessing import spawn

for _module in spawn.bundled_modules():
    importlib.import_module(_module)

Run = spawn.command()
