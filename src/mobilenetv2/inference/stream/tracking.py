"""Track IDs across the frames of a video: ByteTrack from Roboflow's ``trackers`` package (the maintained home of
supervision's ByteTrack) on ``supervision.Detections``. Each detection of a frame gets its track ID (None until a
track is confirmed); the count of distinct tracks is the number of objects seen."""

from __future__ import annotations

from typing import Any

import numpy as np

from mobilenetv2.extras import require


class ByteTracks:
    """One video's tracks: ``update(prediction, time)`` -> {"track_ids": [...]} aligned with its detections."""

    def __init__(self, source: str, frame_rate: float | None, score_threshold: float) -> None:
        require("trackers", "stream")
        import warnings

        with warnings.catch_warnings():  # supervision's note that OpenCV is missing, when it is
            warnings.simplefilter("ignore", UserWarning)
            import supervision as sv
            from trackers import ByteTrackTracker
        self.sv, self.source, self.seen = sv, source, set()
        # detections above this start tracks; weaker ones only continue them (ByteTrack's second association)
        high = max(0.5, score_threshold)
        self.tracker = ByteTrackTracker(frame_rate=frame_rate or 30.0, high_conf_det_threshold=high,
                                        track_activation_threshold=high)

    def update(self, prediction: Any, time: float | None = None) -> dict[str, list[int | None]]:
        count = len(prediction.boxes)
        detections = self.sv.Detections(xyxy=np.asarray(prediction.boxes, dtype=np.float32).reshape(-1, 4),
                                        confidence=np.asarray(prediction.scores, dtype=np.float32),
                                        class_id=np.asarray(prediction.labels, dtype=int),
                                        data={"index": np.arange(count)})
        tracked = self.tracker.update(detections)
        ids: list[int | None] = [None] * count
        for index, track in zip(tracked.data.get("index", []), tracked.tracker_id if tracked.tracker_id is not None else []):
            if track >= 0:
                ids[int(index)] = int(track)
                self.seen.add(int(track))
        return {"track_ids": ids}

    @property
    def distinct(self) -> int:
        """How many different objects (confirmed tracks) the video has shown."""
        return len(self.seen)
