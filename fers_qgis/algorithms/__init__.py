"""One module per Processing algorithm; this list is what the provider registers."""


def all_algorithms():
    from .benchmark import BenchmarkAlgorithm
    from .detect import DetectAlgorithm
    from .enhance import EnhanceAlgorithm
    from .evaluate import EvaluateAlgorithm
    from .train_spatial import TrainSpatialAlgorithm
    from .train_spectral import TrainSpectralAlgorithm

    return [DetectAlgorithm(), EnhanceAlgorithm(), EvaluateAlgorithm(), TrainSpectralAlgorithm(),
            TrainSpatialAlgorithm(), BenchmarkAlgorithm()]
