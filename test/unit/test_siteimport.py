"""tcr.common.siteimport: a dependency outside tcr's own directory is still found when tcr runs as
`python3 -I -S` (the installed tcr and tcrd scripts; Debian keeps python3-dnslib in
/usr/lib/python3/dist-packages, beside a tcr in /usr/local/lib/...)."""

import os
import subprocess
import sys

import pytest

TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "target")


def run_isolated(code: str) -> subprocess.CompletedProcess:
    """This interpreter without site: only target/ and the standard library on sys.path."""
    code = f"import sys; sys.path.insert(0, {TARGET!r})\n{code}"
    return subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                          timeout=60)


QUERY = "bytes.fromhex('000101000001000000000000') + b'\\x01a\\x00' + bytes.fromhex('00010001')"


@pytest.mark.parametrize("name, code, out", [
    ("PySquashfsImage",  # tcrd's worker validates an image
     "from tcr.images.reader import _lazy_image_class; print(_lazy_image_class().__name__)", "LazyImage"),
    ("dnslib",  # tcrd answers a local name in a query with more records
     f"from tcr.network.dns.forwarder import Forwarder\n"
     f"print(Forwarder._local_answer_slow(None, {QUERY}, 19, bytes([10, 0, 0, 1]), 1, 60)[-4:].hex())",
     "0a000001"),
    ("yaml", "from tcr.compose.spec import parse_text; print(parse_text('a: 1', 'x.yaml'))", "{'a': 1}"),
])
def test_dependencies_found_through_site(name, code, out):
    pytest.importorskip(name)
    r = run_isolated(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == out


def test_a_missing_module_is_still_an_import_error_and_site_runs_once():
    r = run_isolated("from tcr.common import siteimport\n"
                     "for _ in range(2):\n"
                     "    try:\n        siteimport.import_module('tcr_no_such_module')\n"
                     "    except ImportError as exc:\n        print(type(exc).__name__)\n"
                     "print(siteimport._site_added, 'site' in sys.modules)")
    assert r.stdout.split() == ["ModuleNotFoundError", "ModuleNotFoundError", "True", "True"], r.stderr


def test_a_compressor_module_found_through_site(tmp_path):
    """PySquashfsImage beside tcr but zstandard only in another site directory (Debian:
    python3-zstandard in /usr/lib/python3/dist-packages): a zstd image is still read."""
    pytest.importorskip("zstandard")
    import PySquashfsImage

    from test.fixtures.images import tiny_sqfs

    good = {"version": 1, "image": {"registry": "docker.io", "repository": "library/tiny", "tag": "latest",
                                    "digest": "sha256:" + "1" * 64, "arch": "amd64"},
            "bundlePath": "bundle", "created": 1}
    img = tiny_sqfs(tmp_path, good, comp="zstd")
    beside = tmp_path / "site"
    beside.mkdir()
    os.symlink(os.path.dirname(PySquashfsImage.__file__), beside / "PySquashfsImage")
    r = run_isolated(f"sys.path.append({str(beside)!r})\n"
                     "from tcr.images import reader\n"
                     f"try:\n    print(reader.read_file({img!r}).repository)\n"
                     "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    assert r.stdout.strip() == "library/tiny", r.stdout + r.stderr
