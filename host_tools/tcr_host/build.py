"""create_image(): the whole build, usable from Python (the CLI and test fixtures call it).

pull (skopeo, only for non-local sources) -> resolve the platform's manifest -> scan all layers
(pass 1) -> generate config.json and image-info.json -> stream one tar into tar2sqfs (pass 2)
-> sha256 sidecar -> atomic rename. No root needed: owners and modes travel in tar headers.
On any failure nothing is left at the output path and the temporary files are removed.
"""

import errno
import hashlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from tcr.common import jsonc
from tcr.common.errors import CommandError, ImageNotFound, TcrError, UsageError
from tcr.common.run import Sink, run
from tcr.formats.image_info import ImageInfo
from tcr_host import flatten, merge, preflight
from tcr_host.arch import host_arch, parse_arch, skopeo_overrides
from tcr_host.layout import Layout
from tcr_host.progress import Progress
from tcr_host.refs import ImageRef, parse_image
from tcr_host.tarout import TarWriter

DEFAULT_COMP_LEVEL = 15  # tar2sqfs' and mksquashfs' zstd default
POLICY_FILES = ("/etc/containers/policy.json",)
LOW_SPACE = 1 << 20  # below this much free space a failed write is a full disk


@dataclass(frozen=True)
class BuildResult:
    path: str
    sha256: str
    size: int
    info: ImageInfo
    entries: int
    seconds: float

    def to_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "image": self.info.to_dict(),
                "entries": self.entries, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "BuildResult":
        return cls(str(d["path"]), str(d["sha256"]), int(d["size"]), ImageInfo.from_dict(d["image"]),
                   int(d["entries"]), float(d["seconds"]))


def image_id(digest: str) -> str:
    """XXH64 (seed 0) of the digest string, 16 lowercase hex digits (xxhash on the build PC)."""
    import xxhash

    return xxhash.xxh64_hexdigest(digest.encode(), seed=0)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def _has_policy() -> bool:
    home = os.environ.get("HOME", "")
    paths = list(POLICY_FILES) + ([os.path.join(home, ".config/containers/policy.json")] if home else [])
    return any(os.path.exists(p) for p in paths)


def skopeo_copy_argv(ref: ImageRef, dest: str, arch: Optional[Tuple[str, str]], tls_verify: bool = True,
                     creds: Optional[str] = None, authfile: Optional[str] = None,
                     insecure_policy: bool = False) -> List[str]:
    """The skopeo command that copies ref into the OCI layout reference dest (pure)."""
    argv = ["skopeo"]
    if insecure_policy:  # no policy.json on this machine: skopeo would refuse every copy
        argv.append("--insecure-policy")
    argv += skopeo_overrides(arch) + ["copy", "--quiet"]
    if ref.transport == "docker":
        if not tls_verify:
            argv.append("--src-tls-verify=false")
        if creds:
            argv += ["--src-creds", creds]
        if authfile:
            argv += ["--authfile", authfile]
    argv += [ref.source, dest]
    return argv


def _skopeo_reason(stderr: str) -> str:
    """The last message skopeo logged, without its logrus framing (time=... level=fatal msg="...")."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else "unknown error"
    m = re.search(r'msg="((?:[^"\\]|\\.)*)"', last)
    if m:
        last = m.group(1).replace('\\"', '"')
    return last[:300]


def classify_skopeo(exc: CommandError, ref: ImageRef, arch: str = "") -> TcrError:
    """skopeo's stderr -> one clear message."""
    low = exc.stderr.lower()
    last = _skopeo_reason(exc.stderr)
    if "no image found in manifest list" in low or "no image found in image index" in low:
        return ImageNotFound(f"image {ref.source} has no image for linux/{arch or 'this machine'}",
                             hint="choose one with --arch")
    if any(s in low for s in ("manifest unknown", "name unknown", "repository name not known",
                              "not found", "no such file or directory", "does not exist")):
        return ImageNotFound(f"image not found: {ref.source}")
    if any(s in low for s in ("unauthorized", "authentication required", "access to the resource is denied")):
        return TcrError(f"access to {ref.source} denied: {last}", hint="pass --creds USER:PASS or --authfile")
    if "server gave http response to https client" in low:
        return TcrError(f"registry {ref.registry} speaks plain HTTP", hint="add --tls-verify=false")
    if "x509" in low or "certificate" in low:
        return TcrError(f"TLS error talking to {ref.registry}: {last}", hint="add --tls-verify=false")
    if any(s in low for s in ("connection refused", "no such host", "i/o timeout", "network is unreachable",
                              "dial tcp", "connection reset", "temporary failure in name resolution")):
        return TcrError(f"cannot reach registry {ref.registry}: {last}")
    if "no space left" in low:
        return TcrError("no space left on device while pulling the image", hint="free space or use -w DIR")
    return TcrError(f"pulling {ref.source} failed: {last}")


def _no_space(exc: BaseException, outdir: str) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    if isinstance(exc, CommandError):
        if "no space left" in exc.stderr.lower():
            return True
        # tar2sqfs reports a full disk as a bare "I/O error": look at the disk (temp file still there)
        try:
            st = os.statvfs(outdir)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < LOW_SPACE
    return False


def create_image(image: str, output: Optional[str] = None, *, arch: Optional[str] = None,
                 tls_verify: bool = True, creds: Optional[str] = None, authfile: Optional[str] = None,
                 comp_level: Optional[int] = None, force: bool = False, work_dir: Optional[str] = None,
                 name: Optional[str] = None, jobs: Optional[int] = None, created: Optional[int] = None,
                 progress: Optional[Progress] = None) -> BuildResult:
    """Build IMAGE into a zstd squashfs at output (default ./<name>_<tag>.sqfs). Raises TcrError.

    arch: amd64, arm64, arm/v7 ... (a multi-arch index otherwise gives the host's platform)
    name: record the image under this name[:tag] instead of the one derived from IMAGE
    work_dir: keep pulled blobs there (reused by later builds); default a temp dir next to output
    """
    t0 = time.monotonic()
    prog = progress or Progress(enabled=False)
    ref = parse_image(image, name)
    want = parse_arch(arch) if arch else None
    level = DEFAULT_COMP_LEVEL if comp_level is None else comp_level
    if not 1 <= level <= 22:
        raise UsageError(f"--comp-level must be 1..22 (zstd), not {level}")
    out = os.path.abspath(output or ref.default_filename())
    outdir = os.path.dirname(out)
    if os.path.isdir(out):
        raise UsageError(f"output {out} is a directory")
    if not os.path.isdir(outdir):
        raise TcrError(f"output directory {outdir} does not exist")
    if os.path.lexists(out) and not force:
        raise TcrError(f"output file {out} already exists", hint="use -f to overwrite it")
    if not os.access(outdir, os.W_OK):
        raise TcrError(f"cannot write to {outdir}: permission denied")
    uses_skopeo = ref.transport != "oci"
    preflight.check((["skopeo"] if uses_skopeo else []) + ["tar2sqfs"], ["xxhash"])
    if not uses_skopeo and not os.path.isdir(ref.path):
        raise ImageNotFound(f"OCI layout directory {ref.path} does not exist")

    temps: List[str] = []
    tmpdirs: List[str] = []
    try:
        if uses_skopeo:
            if work_dir:
                os.makedirs(work_dir, exist_ok=True)
                layout_dir = os.path.join(work_dir, "oci")
            else:
                tmp = tempfile.mkdtemp(prefix=".tcr-build-", dir=outdir)
                tmpdirs.append(tmp)
                layout_dir = os.path.join(tmp, "oci")
            lref = "img-" + hashlib.sha256(f"{ref.source} {arch}".encode()).hexdigest()[:16]
            prog.step(f"pull {ref.source}")
            try:
                run(skopeo_copy_argv(ref, f"oci:{layout_dir}:{lref}", want, tls_verify, creds, authfile,
                                     insecure_policy=not _has_policy()), timeout=None)
            except CommandError as exc:
                raise classify_skopeo(exc, ref, arch or "")
            prog.done()
            layout = Layout(layout_dir)
        else:
            layout, lref = Layout(ref.path), ref.ref
        img = layout.resolve(lref, want, host_arch(), what=f"image {image}")

        prog.step("flatten", img.total_size)
        tree = merge.scan(layout, img.layers, prog.advance)
        plan = flatten.plan(tree)
        prog.done(f"{len(img.layers)} layers, {plan.entries} entries")
        config = _runtime_config(img.config, tree)
        info = ImageInfo(id=image_id(img.manifest_digest), registry=ref.registry, repository=ref.repository,
                         tag=ref.tag, digest=img.manifest_digest, arch=img.arch, bundle_path="bundle",
                         created=int(time.time()) if created is None else int(created))
        info = ImageInfo.from_json(info.to_json().encode())  # never write what a reader would refuse

        fd, tmp_out = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.", suffix=".tmp", dir=outdir)
        os.close(fd)
        temps.append(tmp_out)
        prog.step("pack", plan.data_bytes)
        entries = _pack(tmp_out, layout, img.layers, plan, info, config, level, jobs, prog)
        prog.done()

        digest = sha256_file(tmp_out)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_out, 0o666 & ~umask)
        side_tmp = tmp_out + ".sha256"
        temps.append(side_tmp)
        with open(side_tmp, "w") as f:
            f.write(f"{digest}  {os.path.basename(out)}\n")
        os.replace(tmp_out, out)
        os.replace(side_tmp, out + ".sha256")
        temps.clear()
        return BuildResult(out, digest, os.path.getsize(out), info, entries, round(time.monotonic() - t0, 3))
    except BaseException as exc:
        prog.clear()
        if _no_space(exc, outdir):
            raise TcrError(f"no space left on device while writing {out}", hint="free some space") from exc
        if isinstance(exc, CommandError) and exc.argv and exc.argv[0] == "tar2sqfs":
            raise TcrError(f"packing the squashfs failed: {exc.message.split(': ', 1)[-1]}") from exc
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError) and exc.strerror:
            where = f"{exc.filename}: " if exc.filename else ""
            raise TcrError(f"{where}{exc.strerror}") from exc
        raise
    finally:
        for p in temps:
            try:
                os.unlink(p)
            except OSError:
                pass
        for d in tmpdirs:
            shutil.rmtree(d, ignore_errors=True)


def _runtime_config(image_config: Dict[str, Any], tree: flatten.Tree) -> Dict[str, Any]:
    from tcr_host.runtime_config import runtime_config

    return runtime_config(image_config, tree.read_captured("etc/passwd"), tree.read_captured("etc/group"))


def tar2sqfs_argv(dest: str, level: int, jobs: Optional[int]) -> List[str]:
    return ["tar2sqfs", "--quiet", "--force", "--no-skip", "--compressor", "zstd",
            "--comp-extra", f"level={level}", "--num-jobs", str(jobs or os.cpu_count() or 1), dest]


def _pack(dest: str, layout: Layout, layers, plan: flatten.Plan, info: ImageInfo, config: Dict[str, Any],
          level: int, jobs: Optional[int], prog: Progress) -> int:
    """Stream the merged tar into tar2sqfs. Returns the number of tar entries written."""
    sink = Sink(tar2sqfs_argv(dest, level, jobs))
    finished = broken = False
    try:
        w = TarWriter(sink.stdin, prog.advance)
        w.add_bytes("image-info.json", info.to_json().encode(), mtime=info.created)
        w.add_dir("bundle", mtime=info.created)
        w.add_bytes("bundle/config.json", jsonc.dumps_pretty(config).encode(), mtime=info.created)
        for ti in plan.pre:
            w.add(ti)
        merge.stream(layout, layers, plan, w)
        for ti in plan.links:
            w.add(ti)
        w.close()
        finished = True
    except BrokenPipeError:
        broken = True  # tar2sqfs exited early; its own error (below) says why
    finally:
        if not finished and not broken:
            sink.abort()
    sink.finish()
    if broken:
        raise TcrError("tar2sqfs stopped reading its input")
    return w.entries
