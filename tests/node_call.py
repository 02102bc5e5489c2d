"""Call node functions in tests the way the executor does, without building a workflow."""


class Nodes:
    """`Nodes(module).name(ctx, ...)` calls the node `name` of a node module with its unset params
    at their defaults and its unconnected optional inputs as None."""

    def __init__(self, module):
        self.module = module

    def __getattr__(self, name):
        fn = getattr(self.module, name)
        spec = fn.__kinograph_spec__
        unset = {**{k: p.default for k, p in spec.params.items()},
                 **{k: None for k, p in spec.inputs.items() if p.optional}}
        return lambda ctx, *args, **kw: fn(ctx, *args, **{**unset, **kw})
