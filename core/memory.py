"""Memory a computation keeps for its backward pass, measured with autograd's saved-tensor hooks.

On a CPU, `tracemalloc` does not see PyTorch tensors and there is no allocator peak counter, so the CPU
figure is the memory autograd keeps between forward and backward: the distinct storages packed by the
saved-tensor hooks (inputs that are saved count once). On a GPU, `torch.cuda.max_memory_allocated` gives the
true peak as well.
"""

from collections.abc import Callable

import torch


def saved_bytes(fn: Callable, *args, **kwargs) -> tuple[object, int]:
    """Run `fn(*args, **kwargs)` and measure the bytes of the distinct storages saved for backward.

    Args:
        fn (Callable):
            The computation; its inputs must require grad for anything to be saved.
        *args, **kwargs:
            Its arguments.

    Returns:
        tuple: the output and the saved bytes.
    """
    storages: dict[tuple[str, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[(str(t.device), s.data_ptr())] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args, **kwargs)
    return out, sum(storages.values())
