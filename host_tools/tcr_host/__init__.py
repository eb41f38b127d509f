"""Build-PC tools of tcr: `tcr-create-image` (OCI image -> zstd squashfs) and its Python API.

Never imported by the target package `tcr` (the device must not need xxhash or zstandard).
"""

__all__ = ["create_image"]


def create_image(*args, **kwargs):  # lazy: keep `import tcr_host` cheap
    from tcr_host.build import create_image as _create_image

    return _create_image(*args, **kwargs)
