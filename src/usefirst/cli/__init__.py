"""The ``usefirst`` command line (``cli.main`` is the typer app).

Each command imports the parts of the engine it runs inside its own body, on purpose: loading
everything (the HTTP app, onnxruntime, the simulator, the trainers and their pandas/LightGBM)
costs seconds of CPU that ``usefirst --help`` and a quick ``usefirst migrate`` should not pay.
Nothing here imports late to dodge an import cycle: the CLI is the top of the house.
"""
