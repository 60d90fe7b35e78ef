"""Semantic segmentation: the task (``task.SegmentationTask``), its metrics, report and palette."""
