def test_reg(registry):
    import urllib.request, json
    print(registry, urllib.request.urlopen(f"http://{registry}/v2/_catalog").read())
    print(urllib.request.urlopen(f"http://{registry}/v2/tcr-test/busybox/tags/list").read())
