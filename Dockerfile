FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# nginx from Debian's package, for the proxy service (deploy/nginx.conf).
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light && rm -rf /var/lib/apt/lists/*
# The runtime lock only (no test or lint tools), every file checked against its hash.
COPY requirements.txt .
RUN pip install --no-cache-dir --require-hashes -r requirements.txt
COPY . .
RUN useradd --create-home app && mkdir -p /data && chown app /data
USER app
EXPOSE 8000
