"""ablate: does this segmentation training trick help on my model and my data, by how much, and
how sure are we?"""

__version__ = "0.1.0"
