"""Appearance / re-identification embeddings (pure Python), shared by the detector node, tracking,
localization and retrieval; it imports neither detection nor tracking."""
from perception_nodes.reid.appearance import ColorHistogramEmbedder

__all__ = ["ColorHistogramEmbedder"]
