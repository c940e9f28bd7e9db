# Code-location image for cog_assets: a Dagster gRPC code server.
# rasterio and h5py wheels bundle GDAL and HDF5, so no system libraries are needed.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home

RUN groupadd --system dagster && useradd --system --gid dagster --home /opt/dagster dagster \
    && mkdir -p /opt/dagster/dagster_home /opt/dagster/app \
    && chown -R dagster:dagster /opt/dagster

WORKDIR /opt/dagster/app
COPY setup.py README.md ./
COPY cog_assets ./cog_assets
RUN pip install . && python -c "import cog_assets.definitions"
COPY workspace.yaml ./
COPY dagster.yaml /opt/dagster/dagster_home/dagster.yaml

USER dagster
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "cog_assets.definitions"]
