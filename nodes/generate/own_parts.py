"""Models Kinograph builds itself (no diffusers pipeline class) handed to the model manager as a pipeline is: their
modules by name in `components`, which it weighs to budget memory, and `to`, which moves them together."""
from __future__ import annotations


class OwnParts:
    def __init__(self, **modules):
        self._names = tuple(modules)
        for name, module in modules.items():
            setattr(self, name, module)

    @property
    def components(self) -> dict:
        return {n: getattr(self, n) for n in self._names}

    def to(self, device):
        for module in self.components.values():
            module.to(device)
        return self
