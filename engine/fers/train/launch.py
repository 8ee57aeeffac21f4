"""``fers-torchrun``: PyTorch's own ``torchrun``, started so that it also runs on a distribution's PyTorch.

torchrun's rendezvous and the workers' process group meet through ``TCPStore``s, whose libuv backend is the
default since PyTorch 2.4; a PyTorch built without libuv (Debian's python3-torch among them) then fails before any
training starts ("use_libuv was requested but PyTorch was build without libuv support"). PyTorch's documented
switch to the older socket backend is the environment variable ``USE_LIBUV=0``: the workers' ``env://``
process group and the agent's own store read it, but the rendezvous backends' stores (c10d, static) are made
with the library default and ignore it (PyTorch 2.6 to 2.13 at least). So when, and only when, this PyTorch lacks
libuv and the caller has not chosen, this sets ``USE_LIBUV=0`` (inherited by every worker) and makes the stores
the launcher creates honour it. Everything else is torchrun's: same arguments, same behaviour.
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence


def libuv_available() -> bool:
    """Whether this PyTorch's TCPStore has its libuv backend: a store is opened on a free loopback port with
    libuv asked for (the only way PyTorch tells), and closed at once."""
    from torch.distributed import TCPStore

    try:
        store = TCPStore("127.0.0.1", 0, 1, True, wait_for_workers=False, use_libuv=True)
    except RuntimeError as e:
        if "libuv" in str(e):
            return False
        raise
    del store
    return True


def tcpstore_without_libuv_if_needed() -> bool:
    """Set ``USE_LIBUV=0`` when PyTorch lacks libuv and ``USE_LIBUV`` is not set already, and make this process's
    stores honour ``USE_LIBUV=0`` whenever it is set (a worker inherits it from fers-torchrun); True if so."""
    if os.environ.get("USE_LIBUV") == "0":
        _stores_honour_use_libuv()
        return True
    if "USE_LIBUV" in os.environ or libuv_available():
        return False
    os.environ["USE_LIBUV"] = "0"
    _stores_honour_use_libuv()
    return True


def _stores_honour_use_libuv() -> None:
    """Every TCPStore made in this process from now on without an explicit backend takes ``USE_LIBUV``: the
    elastic rendezvous modules import ``torch.distributed.TCPStore`` when torchrun first needs them, after this;
    ``torch.distributed.rendezvous`` (a worker's store on torchrun's agent) bound it at import, so it is replaced
    there too."""
    import importlib

    import torch.distributed as dist

    # the module, not the function torch.distributed.rendezvous that shadows its name
    rendezvous = importlib.import_module("torch.distributed.rendezvous")

    base = dist.TCPStore
    if getattr(base, "_fers_honours_use_libuv", False):
        return

    class TCPStore(base):  # a subclass: isinstance checks against PyTorch's class still hold
        _fers_honours_use_libuv = True

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("use_libuv", os.environ.get("USE_LIBUV", "1") == "1")
            super().__init__(*args, **kwargs)

    dist.TCPStore = TCPStore
    if getattr(rendezvous, "TCPStore", None) is base:
        rendezvous.TCPStore = TCPStore


def main(argv: Optional[Sequence[str]] = None) -> int:
    tcpstore_without_libuv_if_needed()
    from torch.distributed.run import main as torchrun

    torchrun(list(sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
