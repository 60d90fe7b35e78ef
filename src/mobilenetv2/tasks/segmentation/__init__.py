"""Semantic segmentation: the task (``task.SegmentationTask``), its metrics, report, palette and presenter."""
