"""Models from names: the zoos (:mod:`.zoo`: timm, torchvision, hf, python and the project's own :mod:`.builders`), built with random weights."""
