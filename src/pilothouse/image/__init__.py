"""Container images for real: build with the engine present, measure, and run as deployed."""
