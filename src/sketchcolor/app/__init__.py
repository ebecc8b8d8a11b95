"""The web app (`sketchcolor app`): a thin shell over ColorizePipeline."""
