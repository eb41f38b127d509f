"""The board zip's loader for tcr's packed byte code. boardzip.py compiles this source into the zip's
`tcr/__init__` (it is not imported on the build PC): the client's start-up modules are ordinary
.pyc members that zipimport reads; every other module is one raw deflate stream inside the stored
member `tcr/_code.z`, compressed against one shared dictionary (the modules' common byte strings:
80 kB less than one deflated .pyc per member, docs/board-integration.md).

Each module is read and inflated on its own (one read of its bytes), so nothing bigger than a
module is ever held; the 32 kB dictionary is kept only while an import is running (a nested
import reuses it) and dropped when the outermost one ends, so tcrd does not hold it. Uses only what
the interpreter has loaded before tcr (marshal, zlib for zipimport, the import system): the client
and the daemon import nothing new through it.
"""

import marshal as _marshal
import sys as _sys

# importlib's ModuleSpec, without importing importlib.util: the package's own spec is one
_ModuleSpec = type(__spec__)


class _PackedCode:
    """A meta path finder and loader for the packed modules: PACKED holds the deflated dictionary,
    the index (name -> offset from the first module, length, is_package) and the modules, each
    deflated against the dictionary; layout gives where in the zip file. Modules keep the
    paths zipimport would give them (`__file__` .../tcr.zip/tcr/x.pyc; tracebacks name the .py
    path the code was compiled with) and their data files stay readable (`get_data`)."""

    def __init__(self, zipimporter, layout, plain):
        self.zipimporter = zipimporter
        self.archive = zipimporter.archive
        self.layout = layout  # offset of the dictionary, its length, the index's length
        self.plain = plain  # the modules zipimport reads (ordinary members): never looked up here
        self._index = None
        self.zdict = None
        self.depth = 0

    @property
    def index(self):
        """name -> (offset, length, is_package), read on the first import of a packed module: a
        client that imports only ordinary members never reads it."""
        if self._index is None:
            offset, dict_length, index_length = self.layout
            base = offset + dict_length + index_length
            self._index = {name: (base + start, length, pkg) for name, (start, length, pkg)
                           in _marshal.loads(self._inflate(offset + dict_length, index_length)).items()}
        return self._index

    def find_spec(self, name, path=None, target=None):
        if not name.startswith("tcr.") or name in self.plain:
            return None
        entry = self.index.get(name)
        if entry is None:
            return None
        where = self.archive + "/" + name.replace(".", "/")
        spec = _ModuleSpec(name, self, origin=where + ("/__init__.pyc" if entry[2] else ".pyc"),  # type: ignore[arg-type]
                           is_package=entry[2])
        spec.has_location = True  # __file__ is set from origin
        if entry[2]:
            spec.submodule_search_locations = [where]
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        self.depth += 1
        try:
            exec(self.get_code(module.__name__), module.__dict__)
        finally:
            self.depth -= 1
            if not self.depth:
                self.zdict = None

    def _read(self, offset, length):
        with open(self.archive, "rb", buffering=0) as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length:
            raise ImportError(f"{self.archive} is cut short", path=self.archive)
        return data

    def _inflate(self, offset, length):
        import zlib  # zipimport has loaded it to read the zip's ordinary members

        zdict = self.zdict
        if zdict is None:
            zdict = zlib.decompress(self._read(self.layout[0], self.layout[1]), -15)
            if self.depth:
                self.zdict = zdict
        inflate = zlib.decompressobj(-15, zdict=zdict)
        return inflate.decompress(self._read(offset, length)) + inflate.flush()

    def get_code(self, name):
        entry = self.index.get(name)
        if entry is None:
            raise ImportError(f"{name} is not packed in {self.archive}", name=name)
        return _marshal.loads(self._inflate(entry[0], entry[1]))

    def is_package(self, name):
        entry = self.index.get(name)
        if entry is None:
            raise ImportError(f"{name} is not packed in {self.archive}", name=name)
        return entry[2]

    def get_source(self, name):
        return None  # byte code only, as zipimport says for a .pyc without its .py

    def get_filename(self, name):
        where = self.archive + "/" + name.replace(".", "/")
        return where + ("/__init__.pyc" if self.is_package(name) else ".pyc")

    def get_data(self, path):
        return self.zipimporter.get_data(path)


def _install(zipimporter, layout, plain):
    """Put the finder first on sys.meta_path (it answers only for its own modules: a string test
    and a set look-up for any other name), replacing one a previous import of this zip left."""
    if not hasattr(zipimporter, "archive"):  # the zip's tcr/__init__.pyc copied out of the zip
        raise ImportError("tcr's byte code is packed in tcr.zip: put the zip itself on sys.path", name="tcr")
    _sys.meta_path[:] = [f for f in _sys.meta_path
                         if not (type(f).__name__ == "_PackedCode" and getattr(f, "archive", None)
                                 == zipimporter.archive)]
    _sys.meta_path.insert(0, _PackedCode(zipimporter, layout, plain))
