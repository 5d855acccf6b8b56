"""Running a trained model on images of any size: tiling and the upscaling logic."""
