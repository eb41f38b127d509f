"""mountinfo parsing, including escaped paths."""

from tcr.kernel import mountinfo

SAMPLE = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
    "41 30 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n"
    "90 22 7:3 / /var/lib/tcr/images/0123456789abcdef/mnt ro,nosuid,nodev,relatime - squashfs /dev/loop3 ro\n"
    "91 22 7:4 / /tmp/with\\040space/and\\011tab\\134back ro - squashfs /dev/loop4 ro\n"
    "92 90 0:50 /sub /var/lib/tcr/images/0123456789abcdef/mnt/x rw master:3 shared:7 - tmpfs none rw\n"
    "garbage line\n"
)


def test_parse_fields():
    ms = mountinfo.parse(SAMPLE)
    assert len(ms) == 6
    m = ms[3]
    assert (m.mount_id, m.parent_id, m.major, m.minor) == (90, 22, 7, 3)
    assert m.fstype == "squashfs" and m.source == "/dev/loop3" and m.options.startswith("ro")
    assert ms[5].optional == ("master:3", "shared:7") and ms[5].root == "/sub"
    assert ms[0].optional == ("shared:1",)


def test_escaped_paths():
    ms = mountinfo.parse(SAMPLE)
    assert ms[4].mount_point == "/tmp/with space/and\ttab\\back"
    assert mountinfo.unescape("a\\040b\\012c") == "a b\nc"


def test_find_and_under():
    ms = mountinfo.parse(SAMPLE)
    assert mountinfo.find("/var/lib/tcr/images/0123456789abcdef/mnt", ms).minor == 3
    assert mountinfo.find("/nope", ms) is None
    under = [m.mount_point for m in mountinfo.under("/var/lib/tcr/images/", ms)]
    assert under == ["/var/lib/tcr/images/0123456789abcdef/mnt/x", "/var/lib/tcr/images/0123456789abcdef/mnt"]
    assert mountinfo.under("/var/lib/tc", ms) == []  # a prefix of a name is not "under"


def test_reads_this_process():
    assert any(m.mount_point == "/" for m in mountinfo.read())
