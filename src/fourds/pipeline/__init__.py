"""Running the pipeline beyond one `dvc repro`: a pipeline's stages several at a time
(`fourds repro-parallel`, fourds.pipeline.parallel) and a grid of pretraining experiments
(`fourds sweep`, fourds.pipeline.sweep)."""
