"""The pipeline's stages, one module per stage of dvc.yaml.

Each module has a `run(...)` that reads its params, calls library code, and writes the stage's
outputs and its run record; decorated with fourds.config.operative.stage, it records nothing if
its params file changes while it runs (fourds.config.guard). `fourds.cli` dispatches to them;
library modules never import a stage, and stages never import each other.
"""
