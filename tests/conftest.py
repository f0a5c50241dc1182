import os

import pytest
import torch

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1 only


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def s3_results():
    """`s3://claimbench/runs?…` on a real S3-compatible server (moto's server mode) bound to 127.0.0.1.

    A free port, the bucket created, dummy credentials in the environment (restored afterwards); the URI carries
    the endpoint (`endpoint_override`, `scheme=http`) and the region, so nothing is looked up elsewhere.
    """
    from moto.server import ThreadedMotoServer
    from pyarrow import fs

    dummy = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {k: os.environ.get(k) for k in dummy}
    os.environ.update(dummy)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    assert host == "127.0.0.1"
    endpoint = f"{host}:{port}"
    s3 = fs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1", allow_bucket_creation=True)
    s3.create_dir("claimbench")
    yield f"s3://claimbench/runs?endpoint_override={endpoint}&scheme=http&region=us-east-1"
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray for every in-process orchestration test (ray.init costs seconds)."""
    import ray

    from studies._ray import init_ray

    init_ray(None, num_cpus=2)
    yield
    ray.shutdown()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
