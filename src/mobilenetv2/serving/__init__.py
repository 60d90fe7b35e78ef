"""Serving: an HTTP server (FastAPI + uvicorn) that batches concurrent requests into one forward pass."""
