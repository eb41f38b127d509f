"""Image reference parsing, architecture names and multi-arch index selection."""

import pytest

from tcr.common.errors import ImageNotFound, TcrError, UsageError
from tcr_host.arch import arch_label, parse_arch, select_manifest, skopeo_overrides
from tcr_host.build import skopeo_copy_argv, tar2sqfs_argv
from tcr_host.refs import ImageRef, parse_image


@pytest.mark.parametrize("image,want", [
    ("busybox", ("docker.io", "library/busybox", "latest", "docker://docker.io/library/busybox:latest")),
    ("busybox:1.36", ("docker.io", "library/busybox", "1.36", "docker://docker.io/library/busybox:1.36")),
    ("user/app:v1", ("docker.io", "user/app", "v1", "docker://docker.io/user/app:v1")),
    ("docker://alpine", ("docker.io", "library/alpine", "latest", "docker://docker.io/library/alpine:latest")),
    ("ghcr.io/o/img:v2", ("ghcr.io", "o/img", "v2", "docker://ghcr.io/o/img:v2")),
    ("localhost/app", ("localhost", "app", "latest", "docker://localhost/app:latest")),
    ("127.0.0.1:5000/tcr-test/busybox:arm64",
     ("127.0.0.1:5000", "tcr-test/busybox", "arm64", "docker://127.0.0.1:5000/tcr-test/busybox:arm64")),
    ("index.docker.io/library/debian", ("docker.io", "library/debian", "latest",
                                        "docker://docker.io/library/debian:latest")),
])
def test_docker_refs(image, want):
    r = parse_image(image)
    assert (r.registry, r.repository, r.tag, r.source) == want
    assert r.transport == "docker"


def test_digest_ref_pins_source_and_names_file():
    d = "sha256:" + "ab" * 32
    r = parse_image(f"alpine@{d}")
    assert r.tag == "" and r.digest == d and r.source == f"docker://docker.io/library/alpine@{d}"
    assert r.default_filename() == "alpine_abababababab.sqfs"
    r = parse_image(f"alpine:3.19@{d}")
    assert r.tag == "3.19" and r.source.endswith(f"alpine@{d}")


@pytest.mark.parametrize("bad", ["Busybox", "busy box", "a:b:c", "alpine@sha256:xyz", "", "ftp://x/y",
                                 "repo:bad!tag"])
def test_bad_refs(bad):
    with pytest.raises(UsageError):
        parse_image(bad)


def test_local_transports():
    r = parse_image("oci:/tmp/My_Layout:v1")
    assert (r.transport, r.path, r.ref, r.registry, r.repository, r.tag) == \
        ("oci", "/tmp/My_Layout", "v1", "localhost", "my-layout", "v1")
    assert r.default_filename() == "my-layout_v1.sqfs"
    r = parse_image("oci:./img")
    assert (r.ref, r.tag, r.source) == ("", "latest", "oci:./img")
    r = parse_image("docker-archive:/x/saved.tar:myapp:2")
    assert (r.registry, r.repository, r.tag) == ("docker.io", "library/myapp", "2")
    r = parse_image("oci-archive:/x/img.tar.gz")
    assert (r.repository, r.tag, r.source) == ("img", "latest", "oci-archive:/x/img.tar.gz")
    with pytest.raises(UsageError):
        parse_image("oci:")


def test_name_override_and_round_trip():
    r = parse_image("oci:/l:latest", name="tcr-test/busybox:v9")
    assert (r.registry, r.repository, r.tag, r.path) == ("docker.io", "tcr-test/busybox", "v9", "/l")
    assert ImageRef.from_dict(r.to_dict()) == r


@pytest.mark.parametrize("spec,want", [("amd64", ("amd64", "")), ("x86_64", ("amd64", "")),
                                       ("aarch64", ("arm64", "")), ("arm64/v8", ("arm64", "")),
                                       ("arm/v7", ("arm", "v7")), ("armhf", ("arm", "v7")),
                                       ("linux/arm/v6", ("arm", "v6")), ("arm", ("arm", ""))])
def test_parse_arch(spec, want):
    assert parse_arch(spec) == want


def test_arch_label_and_bad_arch():
    assert arch_label("arm", "v7") == "arm/v7" and arch_label("arm64", "v8") == "arm64"
    with pytest.raises(UsageError):
        parse_arch("sparc9000")


INDEX = [
    {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}},
    {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    {"digest": "sha256:c", "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
    {"digest": "sha256:d", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
    {"digest": "sha256:e", "platform": {"os": "unknown", "architecture": "unknown"}},
    {"digest": "sha256:f", "platform": {"os": "windows", "architecture": "amd64"}},
]


@pytest.mark.parametrize("arch,variant,digest", [("amd64", "", "sha256:a"), ("arm64", "", "sha256:b"),
                                                 ("arm64", "v8", "sha256:b"), ("arm", "v6", "sha256:c"),
                                                 ("arm", "v7", "sha256:d"), ("arm", "", "sha256:d")])
def test_select_manifest(arch, variant, digest):
    assert select_manifest(INDEX, arch, variant, "img")["digest"] == digest


def test_select_manifest_missing_arch_names_what_exists():
    with pytest.raises(ImageNotFound) as ei:
        select_manifest(INDEX, "riscv64", "", "image x")
    assert "linux/riscv64" in str(ei.value) and "linux/arm/v7" in str(ei.value)
    assert "unknown" not in str(ei.value)


def test_skopeo_argv():
    r = parse_image("127.0.0.1:5000/a/b:c")
    argv = skopeo_copy_argv(r, "oci:/w/oci:t", ("arm", "v7"), tls_verify=False, creds="u:p", authfile="/a")
    assert argv[:8] == ["skopeo", "--override-os", "linux", "--override-arch", "arm",
                        "--override-variant", "v7", "copy"]
    assert "--src-tls-verify=false" in argv and argv[-2:] == ["docker://127.0.0.1:5000/a/b:c", "oci:/w/oci:t"]
    assert argv[argv.index("--src-creds") + 1] == "u:p" and argv[argv.index("--authfile") + 1] == "/a"
    local = skopeo_copy_argv(parse_image("oci-archive:/x.tar"), "oci:/w:t", None, tls_verify=False)
    assert "--src-tls-verify=false" not in local and "--override-arch" not in local
    assert skopeo_overrides(None) == []


def test_tar2sqfs_argv():
    argv = tar2sqfs_argv("/o.sqfs", 19, 3)
    assert argv[0] == "tar2sqfs" and argv[-1] == "/o.sqfs"
    assert argv[argv.index("--compressor") + 1] == "zstd"
    assert argv[argv.index("--comp-extra") + 1] == "level=19"
    assert "--no-skip" in argv and "--no-xattr" not in argv


@pytest.mark.parametrize("stderr,kind,text", [
    ('time="x" level=fatal msg="initializing source docker://r/a:b: reading manifest b in r/a: '
     'manifest unknown: manifest unknown"', ImageNotFound, "image not found"),
    ('level=fatal msg="pinging container registry r: Get \\"https://r/v2/\\": dial tcp 127.0.0.1:1: '
     'connect: connection refused"', TcrError, "cannot reach registry"),
    ("http: server gave HTTP response to HTTPS client", TcrError, "plain HTTP"),
    ("choosing image instance: no image found in manifest list for architecture riscv64", ImageNotFound,
     "has no image for linux/riscv64"),
    ("reading blob: unauthorized: authentication required", TcrError, "denied"),
])
def test_classify_skopeo(stderr, kind, text):
    from tcr.common.errors import CommandError
    from tcr_host.build import classify_skopeo

    err = classify_skopeo(CommandError(["skopeo"], 1, stderr), parse_image("r/a:b"), "riscv64")
    assert isinstance(err, kind) and text in err.render()
    assert "\n" not in str(err) and 'msg="' not in str(err)


def test_progress_only_draws_when_enabled():
    import io

    from tcr_host.progress import Progress

    buf = io.StringIO()
    p = Progress(enabled=True, stream=buf)
    p.step("flatten", 2_000_000)
    p.advance(1_000_000)
    p.done("2 layers")
    assert "flatten" in buf.getvalue() and "done in" in buf.getvalue() and "2 layers" in buf.getvalue()
    quiet = io.StringIO()
    q = Progress(enabled=False, stream=quiet)
    q.step("x", 1)
    q.advance(1)
    q.done()
    assert quiet.getvalue() == ""
