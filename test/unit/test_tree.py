"""tcr.common.tree.remove_tree: removes a tree, never follows symlinks, survives deep nesting."""

import os

from tcr.common.tree import remove_tree


def test_removes_files_dirs_and_symlinks_without_following(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    top = tmp_path / "top"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_text("1")
    (top / "file").write_text("2")
    os.symlink(outside, top / "a" / "link-to-dir")
    os.symlink(outside / "keep", top / "link-to-file")
    os.mkfifo(top / "fifo")
    os.chmod(top / "a" / "b", 0o500)  # root removes anyway; a user would not
    assert remove_tree(str(top)) is True or os.geteuid() != 0
    if os.geteuid() == 0:
        assert not top.exists()
    assert (outside / "keep").read_text() == "x"


def test_symlink_at_the_top_is_removed_not_followed(tmp_path):
    target = tmp_path / "t"
    target.mkdir()
    (target / "keep").write_text("x")
    os.symlink(target, tmp_path / "l")
    assert remove_tree(str(tmp_path / "l"))
    assert not os.path.lexists(tmp_path / "l") and (target / "keep").exists()


def test_missing_path_is_gone_already(tmp_path):
    assert remove_tree(str(tmp_path / "nope")) is True


def test_nesting_deeper_than_the_recursion_limit(tmp_path):
    top = tmp_path / "deep"
    fd = os.open(tmp_path, os.O_RDONLY)
    os.mkdir("deep", dir_fd=fd)
    cur = os.open("deep", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    for _ in range(1200):  # relative mkdirs: the full path would pass PATH_MAX
        os.mkdir("d", dir_fd=cur)
        nxt = os.open("d", os.O_RDONLY, dir_fd=cur)
        os.close(cur)
        cur = nxt
    os.close(cur)
    assert remove_tree(str(top))  # no RecursionError, no fd per level
    assert not top.exists()


def test_make_private_dir_is_new_and_private(tmp_path):
    from tcr.common.tree import make_private_dir

    a = make_private_dir(str(tmp_path), "staging-")
    b = make_private_dir(str(tmp_path), "staging-")
    assert a != b and os.path.basename(a).startswith("staging-")
    assert os.stat(a).st_mode & 0o777 == 0o700
