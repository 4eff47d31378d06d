"""Deploy mode: a model re-parameterised for inference before it is counted and timed.

RepVGG, MobileOne, FastViT, GhostNetV3, RepViT and the like train with parallel branches
(and BatchNorms) that fold into one convolution for inference; papers and timm's published
results print the folded (deploy) model's params and MACs. :func:`reparameterize` folds
a built model in place the way timm's ``reparameterize_model`` does: every submodule with
``fuse()`` is replaced by what it returns, one with ``reparameterize()`` or
``switch_to_deploy()`` is switched in place. timm's own walk is used when timm is installed,
so a timm model folds exactly as timm's benchmark folds it; the model's root is handled
too (timm's walk only visits children). A model with none of these methods is left as it
is and recorded as such: not an error.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The methods that mark a module as re-parameterisable, in the order they are tried.
DEPLOY_METHODS: tuple[str, ...] = ("fuse", "reparameterize", "switch_to_deploy")

#: ``deploy_mode`` of a row measured as built (``reparameterize`` off).
AS_BUILT = "as-built"
#: ``deploy_mode`` of a row whose model was folded into its deploy form.
REPARAMETERIZED = "reparameterized"
#: ``deploy_mode`` of a row that asked for deploy mode but has nothing to fold.
NOTHING_TO_REPARAMETERIZE = "nothing-to-reparameterize"


@dataclass(frozen=True)
class DeployOutcome:
    """What :func:`reparameterize` did: the module to measure and how many modules folded."""

    module: object
    mode: str
    folded_modules: int = 0


def deployable_modules(module) -> list[str]:
    """Names (``""`` for the root) of the submodules that have a deploy method."""
    return [name for name, sub in module.named_modules()
            if any(callable(getattr(sub, method, None)) for method in DEPLOY_METHODS)]


def _fold(module):
    """``module`` itself folded: the replacement ``fuse()`` returns, or ``module`` switched in place."""
    for method in DEPLOY_METHODS:
        call = getattr(module, method, None)
        if callable(call):
            result = call()
            return result if method == "fuse" and result is not None else module
    return module


def _walk(module) -> None:
    # The same walk as timm's reparameterize_model, for when timm is not installed.
    for name, child in module.named_children():
        if callable(getattr(child, "fuse", None)):
            setattr(module, name, child.fuse())
        elif callable(getattr(child, "reparameterize", None)):
            child.reparameterize()
        elif callable(getattr(child, "switch_to_deploy", None)):
            child.switch_to_deploy()
        _walk(child)


def reparameterize(module) -> DeployOutcome:
    """``module`` in deploy form (in place where the model allows; use the returned module).

    Returns ``nothing-to-reparameterize`` with the module untouched when no submodule has a
    deploy method; the mode is kept in eval (folding reads BatchNorm running statistics)."""
    folded = deployable_modules(module)
    if not folded:
        return DeployOutcome(module, NOTHING_TO_REPARAMETERIZE)
    training = module.training
    module.eval()
    if "" in folded:  # the root has its own method: timm's walk would not call it
        module = _fold(module)
    try:
        from timm.utils.model import reparameterize_model
    except ImportError:
        _walk(module)
    else:
        module = reparameterize_model(module, inplace=True)
    module.train(training)
    return DeployOutcome(module, REPARAMETERIZED, len(folded))
