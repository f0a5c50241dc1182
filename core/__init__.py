"""claimbench building blocks: techniques, data loaders and training loops in plain PyTorch.

Nothing here imports Ray or writes files outside `core/data`; every function runs on CPU or CUDA.
"""
