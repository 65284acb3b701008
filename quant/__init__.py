"""Training side of qaccel.

``quant.ir`` (the integer model) imports numpy only; modules that need PyTorch
live beside it and are imported explicitly, so that hardware users never pay
for torch.
"""
