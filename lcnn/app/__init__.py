"""The application around the detector: the command line (`python -m lcnn`) and the dataset
downloader. It imports from lcnn.detector and the package root, never from lcnn.course."""
