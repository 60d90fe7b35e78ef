# A CPU image that serves one model: docker build -t mobilenetv2 . && docker run -p 8000:8000 -v $PWD/runs:/models \
#   mobilenetv2 /models/my-run/best.safetensors
# (the model is mounted, not baked in; add --backend onnx, --workers N, --api-key ... after the path)
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# torch's CPU wheels (the pinned pair), then the package with the serving and deployment extras only
COPY requirements.txt ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu -r requirements.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install '.[serve,deploy]' && useradd --create-home --uid 10001 serve
USER serve
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
# 0.0.0.0 inside the container: the port is published by `docker run -p`, which decides who can reach it
ENTRYPOINT ["mobilenetv2", "serve", "--host", "0.0.0.0", "--port", "8000"]
