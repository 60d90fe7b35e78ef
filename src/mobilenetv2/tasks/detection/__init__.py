"""Object detection: SSDLite boxes and classes, COCO mAP, boxes drawn on the photos."""
